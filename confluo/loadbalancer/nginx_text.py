"""nginx's configuration as text: the `server` lines of an upstream found and edited in place, so that every
other byte of the administrator's file stays as it was (comments, other upstreams, parameters)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from confluo.loadbalancer.base import LoadBalancerError

DOWN = "down"


@dataclass(frozen=True)
class Token:
    text: str
    start: int
    end: int


@dataclass(frozen=True)
class ServerLine:
    """One `server` directive of an upstream, with where its parts are in the file (to edit it in place)."""

    address: str
    down: Token | None
    previous_end: int  # end of the token before `down` (so removing it also removes its leading space)
    semicolon: int
    start: int  # where its `server` word begins
    address_token: Token


def _tokens(text: str) -> Iterator[Token]:
    """nginx's words, quoted strings and `{ } ;`, without comments."""
    index, size = 0, len(text)
    while index < size:
        char = text[index]
        if char.isspace():
            index += 1
        elif char == "#":
            newline = text.find("\n", index)
            index = size if newline < 0 else newline
        elif char in "{};":
            yield Token(char, index, index + 1)
            index += 1
        elif char in "\"'":
            close = text.find(char, index + 1)
            close = size - 1 if close < 0 else close
            yield Token(text[index + 1 : close], index, close + 1)
            index = close + 1
        else:
            end = index
            while end < size and not text[end].isspace() and text[end] not in "{};":
                end += 1
            yield Token(text[index:end], index, end)
            index = end


@dataclass(frozen=True)
class _Statement:
    block: tuple[str, ...] | None  # the words that open the block it is in (`upstream confluence`); None: top level
    words: tuple[Token, ...]
    semicolon: Token


def _parsed(text: str) -> tuple[list[tuple[str, ...]], list[_Statement]]:
    """Every block opened (its words) and every statement ended by `;`, with the block it is in."""
    opened: list[tuple[str, ...]] = []
    statements: list[_Statement] = []
    blocks: list[tuple[str, ...]] = []
    words: list[Token] = []
    for token in _tokens(text):
        if token.text == "{":
            blocks.append(tuple(word.text for word in words))
            opened.append(blocks[-1])
            words = []
        elif token.text == "}":
            if blocks:
                blocks.pop()
            words = []
        elif token.text == ";":
            if words:
                statements.append(_Statement(blocks[-1] if blocks else None, tuple(words), token))
            words = []
        else:
            words.append(token)
    return opened, statements


def _upstream_statements(text: str, upstream: str) -> list[_Statement] | None:
    """The statements of `upstream NAME { … }`; None when the file has no such upstream."""
    opened, statements = _parsed(text)
    block = ("upstream", upstream)
    return [statement for statement in statements if statement.block == block] if block in opened else None


def servers_of(text: str, upstream: str) -> list[ServerLine] | None:
    """The `server` lines of `upstream NAME { … }`; None when the file has no such upstream."""
    statements = _upstream_statements(text, upstream)
    if statements is None:
        return None
    return [_server_line(s.words, s.semicolon) for s in statements if len(s.words) >= 2 and s.words[0].text == "server"]


def directives_of(text: str, upstream: str) -> list[list[str]]:
    """Every directive of `upstream NAME { … }` as its words (`["hash", "$cookie_JSESSIONID", "consistent"]`)."""
    return [[word.text for word in s.words] for s in _upstream_statements(text, upstream) or []]


STICKY = frozenset({"ip_hash", "hash", "sticky"})  # `sticky` is NGINX Plus's


def _server_line(words: Sequence[Token], semicolon: Token) -> ServerLine:
    for index, word in enumerate(words[2:], start=2):
        if word.text == DOWN:
            return ServerLine(words[1].text, word, words[index - 1].end, semicolon.start, words[0].start, words[1])
    return ServerLine(words[1].text, None, words[-1].end, semicolon.start, words[0].start, words[1])


def find_server(text: str, upstream: str, address: str, where: str) -> ServerLine:
    servers = servers_of(text, upstream)
    if servers is None:
        raise LoadBalancerError(f"{where}: there is no `upstream {upstream}` block")
    matches = [line for line in servers if line.address == address]
    if len(matches) != 1:
        known = ", ".join(line.address for line in servers) or "none"
        problem = "has no" if not matches else f"has {len(matches)} lines for"
        raise LoadBalancerError(f"{where}: upstream {upstream} {problem} server {address} (its servers: {known})")
    return matches[0]


def with_down(text: str, upstream: str, address: str, down: bool, where: str = "nginx") -> str:
    """The file's text with the server's `down` flag set or removed; everything else byte for byte the same."""
    line = find_server(text, upstream, address, where)
    if down and line.down is None:
        return text[: line.semicolon] + " " + DOWN + text[line.semicolon :]
    if not down and line.down is not None:
        return text[: line.previous_end] + text[line.down.end :]
    return text


def with_server(text: str, upstream: str, address: str, like: str, note: str, where: str = "nginx") -> str:
    """The file's text with a `server` line for `address` out of the pool (`down`), its parameters those of the
    `like` server's line (as an administrator copies a line), put after the upstream's last server line with
    `# note`; the text unchanged when the upstream already has `address`."""
    servers = servers_of(text, upstream)
    if servers is not None and any(line.address == address for line in servers):
        return text
    model = find_server(text, upstream, like, where)
    assert servers  # find_server found `like` among them
    written = text[model.start : model.address_token.start] + address + text[model.address_token.end : model.semicolon]
    line = " ".join(written.split()) + ("" if model.down is not None else " " + DOWN) + ";"
    indent = text[text.rfind("\n", 0, model.start) + 1 : model.start]
    after = servers[-1].semicolon + 1
    end_of_line = len(text) if (newline := text.find("\n", after)) < 0 else newline
    if not text[after:end_of_line].strip() or text[after:end_of_line].lstrip().startswith("#"):
        after = end_of_line  # after the line's own comment (`# node2`), which names that line's server
    return text[:after] + f"\n{indent if not indent.strip() else '    '}{line}  # {note}" + text[after:]
