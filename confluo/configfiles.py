"""Pure text transformations of the files confluo writes, and the diffs a plan shows for them."""

from __future__ import annotations

import difflib
import re

_HOME_LINE = re.compile(r"^\s*confluence\.home\s*=\s*(?P<value>.*?)\s*$")
# Values that must never reach a plan, a log or a terminal: passwords in server.xml, crowd.properties, ...
# A key starts where a run of key characters starts and is at most ~500 long: with `[\w.-]*` on both sides a
# 100 000-character word took minutes (every start, every split); bounded, masking stays linear.
_SECRET_VALUE = re.compile(
    r"""(?ix)
    (?<![\w.-])(?P<key>[\w.-]{0,256}?(?:password|passwd|secret|token|keystorePass|truststorePass)[\w.-]{0,256})
    (?P<sep>\s*=\s*["']?|\s*:\s*)
    (?P<value>[^"'\s>]+)
    """
)


def read_home(init_properties: str) -> str | None:
    """confluence.home as Confluence reads it: the last line that is not a comment."""
    home = None
    for line in init_properties.splitlines():
        if line.lstrip().startswith(("#", "!")):
            continue
        match = _HOME_LINE.match(line)
        if match:
            home = match.group("value")
    return home


def with_home(init_properties: str, home: str) -> str:
    """The file with confluence.home set to `home`; every comment kept, earlier settings replaced in place."""
    lines = init_properties.splitlines()
    setting = f"confluence.home={home}"
    positions = [
        i for i, line in enumerate(lines) if not line.lstrip().startswith(("#", "!")) and _HOME_LINE.match(line)
    ]
    if positions:
        for index in positions[:-1]:
            lines[index] = "# " + lines[index] + "  (replaced by confluo)"
        lines[positions[-1]] = setting
    else:
        lines.append(setting)
    return "\n".join(lines) + "\n"


def _path_pattern(path: str) -> re.Pattern[str]:
    # The path as a whole word: /opt/confluence must not match inside /opt/confluence-data.
    return re.compile(re.escape(path.rstrip("/")) + r"(?=[/\s\"';:]|$)", re.MULTILINE)


def names_path(text: str, path: str) -> bool:
    return _path_pattern(path).search(text) is not None


def repoint(service_definition: str, old_install: str, new_install: str) -> str:
    """An init.d script or systemd unit with every mention of the old installation replaced by the new one."""
    return _path_pattern(old_install).sub(new_install.rstrip("/"), service_definition)


def mask_secrets(text: str) -> str:
    return _SECRET_VALUE.sub(lambda m: f"{m.group('key')}{m.group('sep')}******", text)


def unified_diff(path: str, before: str, after: str) -> str:
    """A unified diff with secret values masked; empty when nothing changes."""
    if before == after:
        return ""
    lines = difflib.unified_diff(
        mask_secrets(before).splitlines(keepends=True),
        mask_secrets(after).splitlines(keepends=True),
        fromfile=f"{path} (as shipped)",
        tofile=f"{path} (as confluo writes it)",
    )
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)
