"""Pure text transformations of the files confluo writes, and the diffs a plan shows for them."""

from __future__ import annotations

import difflib
import re

from confluo.secrets import mask_secrets

HOME_KEY = "confluence.home"
_BLANKS = " \t\f"
_UNESCAPED = {"t": "\t", "n": "\n", "r": "\r", "f": "\f"}


_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+$")


def natural_lines(text: str, *, keepends: bool = False) -> list[str]:
    """Lines as Java splits them: at \n, \r or \r\n only (str.splitlines also splits at \x1c, \x85, ...)."""
    lines = _LINE.findall(text)
    return lines if keepends else [line.rstrip("\r\n") for line in lines]


def _logical_lines(text: str) -> list[tuple[int, int, str]]:
    """(first natural line, last natural line, logical line) as java.util.Properties.load(Reader) joins them:
    a line ending in an odd number of backslashes goes on, blanks at the start of the next one dropped."""
    natural = natural_lines(text)
    logical: list[tuple[int, int, str]] = []
    index = 0
    while index < len(natural):
        first, line = index, natural[index].lstrip(_BLANKS)
        while _continues(line) and index + 1 < len(natural):
            index += 1
            line = line[:-1] + natural[index].lstrip(_BLANKS)
        logical.append((first, index, line))
        index += 1
    return logical


def _continues(line: str) -> bool:
    return (len(line) - len(line.rstrip("\\"))) % 2 == 1


def _split_entry(line: str) -> tuple[str, str]:
    """A logical line's key and value: the key ends at the first unescaped `=`, `:` or blank."""
    index, escaped = 0, False
    while index < len(line):
        char = line[index]
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char in "=:" or char in _BLANKS:
            break
        index += 1
    key, rest = line[:index], line[index:].lstrip(_BLANKS)
    if rest[:1] in ("=", ":"):
        rest = rest[1:].lstrip(_BLANKS)
    return _unescape(key), _unescape(rest)


def _unescape(text: str) -> str:
    out, index = [], 0
    while index < len(text):
        char = text[index]
        if char == "\\" and index + 1 < len(text):
            following = text[index + 1]
            if following == "u" and len(text) >= index + 6:
                out.append(chr(int(text[index + 2 : index + 6], 16)))
                index += 6
                continue
            out.append(_UNESCAPED.get(following, following))
            index += 2
            continue
        out.append(char)
        index += 1
    # \uXXXX pairs are UTF-16 surrogates, as Java strings hold them: joined into one character.
    return "".join(out).encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


def property_entries(text: str) -> list[tuple[int, int, str, str]]:
    """Every setting of a properties file as Java reads it: (first line, last line, key, value)."""
    entries = []
    for first, last, line in _logical_lines(text):
        if line and line[0] not in "#!":
            key, value = _split_entry(line)
            entries.append((first, last, key, value))
    return entries


def read_home(init_properties: str) -> str | None:
    """confluence.home as Confluence reads it: separators `=`, `:` or blanks, escapes, the last one wins."""
    homes = [value for _, _, key, value in property_entries(init_properties) if key == HOME_KEY]
    return homes[-1] if homes else None


def escape_value(value: str) -> str:
    """A value written so that java.util.Properties reads back exactly `value`: backslashes doubled, control
    characters escaped, a leading blank escaped, anything beyond Latin-1 as \\uXXXX (Properties.load(InputStream)
    reads the file as ISO 8859-1)."""
    out = []
    for index, char in enumerate(value):
        if char == "\\":
            out.append("\\\\")
        elif char in "\t\n\r\f":
            out.append("\\" + {"\t": "t", "\n": "n", "\r": "r", "\f": "f"}[char])
        elif char == " " and index == 0:
            out.append("\\ ")
        elif ord(char) > 0xFF:
            units = char.encode("utf-16-be")
            out += [f"\\u{int.from_bytes(units[i : i + 2], 'big'):04x}" for i in range(0, len(units), 2)]
        else:
            out.append(char)
    return "".join(out)


def with_home(init_properties: str, home: str) -> str:
    """The file with confluence.home set to `home`: every other byte kept, line endings included (a CRLF file
    stays CRLF); earlier settings of the key commented out, the last one replaced in place."""
    lines = natural_lines(init_properties, keepends=True)
    newline = "\r\n" if "\r\n" in init_properties else "\n"
    setting = f"{HOME_KEY}={escape_value(home)}"
    homes = [(first, last) for first, last, key, _ in property_entries(init_properties) if key == HOME_KEY]
    if not homes:
        if lines and not lines[-1].endswith(("\n", "\r")):
            lines[-1] += newline
        return "".join(lines) + setting + newline
    for first, last in homes[:-1]:
        for index in range(first, last + 1):
            lines[index] = "# " + lines[index]
    first, last = homes[-1]
    ending = lines[last][len(lines[last].rstrip("\r\n")) :] or newline
    lines[first : last + 1] = [setting + ending]
    return "".join(lines)


def _path_pattern(path: str) -> re.Pattern[str]:
    # The path as a whole word: /opt/confluence must not match inside /opt/confluence-data.
    return re.compile(re.escape(path.rstrip("/")) + r"(?=[/\s\"';:]|$)", re.MULTILINE)


def names_path(text: str, path: str) -> bool:
    return _path_pattern(path).search(text) is not None


def repoint(service_definition: str, old_install: str, new_install: str) -> str:
    """An init.d script or systemd unit with every mention of the old installation replaced by the new one."""
    return _path_pattern(old_install).sub(new_install.rstrip("/"), service_definition)


def unified_diff(
    path: str, before: str, after: str, labels: tuple[str, str] = ("as shipped", "as confluo writes it")
) -> str:
    """A unified diff with secret values masked; empty when nothing changes."""
    if before == after:
        return ""
    lines = difflib.unified_diff(
        mask_secrets(before).splitlines(keepends=True),
        mask_secrets(after).splitlines(keepends=True),
        fromfile=f"{path} ({labels[0]})",
        tofile=f"{path} ({labels[1]})",
    )
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)


def changed_lines(diff: str) -> tuple[int, int]:
    """(added, removed) lines of a unified diff."""
    body = [line for line in diff.splitlines() if not line.startswith(("+++", "---"))]
    return sum(line.startswith("+") for line in body), sum(line.startswith("-") for line in body)
