"""Input-file seam: every config file read and every config problem as one line, `FILE: where: problem (fix)`.

Files are checked before parsing (regular file, size cap, UTF-8, YAML depth and alias expansion);
pydantic ValidationErrors and YAML problems become ConfigError. Used by harness.config (scenarios,
SLA policies), matrix files and the dataset reader.
"""

from __future__ import annotations

import difflib
import os
import re
import stat
import unicodedata
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

# A scenario is about 1 KB and a matrix file a few KB: 10 MB is far above any real config file, and
# reading is bounded by it before anything is parsed (a typo'd path to a log or /dev/zero cannot
# exhaust memory).
MAX_CONFIG_BYTES = 10 * 1024 * 1024
# Scenario files nest about 5 levels; PyYAML's composer recurses once per level (deep nesting would
# end in RecursionError), so more than this is refused while the events stream in, before composing.
MAX_YAML_DEPTH = 64
# Values after expanding YAML aliases. Aliases share one object, but validation walks every use, so
# "billion laughs" (aliases of aliases) would take exponential time and memory; real configs have
# a few hundred values.
MAX_YAML_VALUES = 200_000
# One-line messages stay readable: user text quoted in a message is clipped to this many characters,
# and a whole message is clipped (keeping its end, where the fix is) beyond _MAX_MESSAGE_CHARS.
_MAX_QUOTE_CHARS = 80
_MAX_MESSAGE_CHARS = 1000
_SURROGATE_RX = re.compile("[\ud800-\udfff]")


def one_line(text: str, limit: int = _MAX_MESSAGE_CHARS) -> str:
    """`text` with line breaks, control and format characters and lone surrogates escaped, clipped to `limit`."""
    if len(text) > 4 * limit:  # only the kept head and tail are escaped (a quoted value may be megabytes)
        text = text[:2 * limit] + text[-limit:]
    out = []
    for ch in text:
        if ch == "\t":
            out.append(" ")
        # Cc, Zl, Zp: everything str.splitlines() splits on; Cf: invisible and bidi-reordering
        # characters that would make the printed line differ from the text; Cs: unencodable halves.
        elif unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Zl", "Zp"):
            out.append(f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    s = "".join(out)
    if len(s) > limit:
        keep_end = limit // 4
        s = f"{s[:limit - keep_end - 5]} ... {s[-keep_end:]}"
    return s


def has_surrogate(text: str) -> bool:
    """Whether `text` holds a lone surrogate (from a \\ud800-style escape), which UTF-8 cannot encode."""
    return _SURROGATE_RX.search(text) is not None


def clip(value: Any, limit: int = _MAX_QUOTE_CHARS) -> str:
    """A user value for quoting inside a message: one line, at most `limit` characters."""
    s = one_line(str(value)[:4 * limit], limit=10 * limit)
    return s if len(s) <= limit else s[:limit - 3] + "..."


class ConfigError(Exception):
    """A bad scenario, policy, file or flag: the message is one line naming the problem and the fix.

    The one-line rule is enforced here, so a key or value quoted from a file cannot break it.
    """

    def __init__(self, message: object = ""):
        super().__init__(one_line(str(message)))


def validation_message(exc: Exception) -> str:
    """The first problem of a (pydantic) ValueError as one line, for a flag's message (`--target: ...`).

    `str(ValidationError)` spans lines and ends with a docs URL; this is the problem alone.
    """
    if isinstance(exc, ValidationError) and exc.errors():
        e = exc.errors()[0]
        return one_line(_bound_message(e) or e["msg"].removeprefix("Value error, "))
    return one_line(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)


def _fields_at(model: type[BaseModel], loc: tuple) -> list[str]:
    """The field names valid at `loc` inside `model` (for 'did you mean' hints)."""
    cur: Any = [model]
    for part in loc[:-1]:
        if not isinstance(part, str) or not cur:
            continue
        fld = next((m.model_fields[part] for m in cur if part in m.model_fields), None)
        if fld is None:
            return []
        ann = fld.annotation
        models = [c for cand in (ann, *getattr(ann, "__args__", ()))
                  for c in (cand, *getattr(cand, "__args__", ()))
                  if isinstance(c, type) and issubclass(c, BaseModel)]
        cur = models
    names: list[str] = []
    for m in cur if isinstance(cur, list) else [cur]:
        names += [n for n in getattr(m, "model_fields", {}) if n not in names]
    return names


_UNION_BRANCHES = {"sim", "external", "vllm", "tgi", "llamacpp", "str", "SlaPolicy"}


def format_validation_error(source: str, err: ValidationError, model: type[BaseModel]) -> str:
    """First pydantic error as one line: `FILE: key.path: problem (fix)`."""
    errors = err.errors()
    # For `str | Model` unions, the branch that failed on type alone is the less useful message.
    # A misspelled key usually also causes a "field required": the unknown key is the better hint.
    e = next((x for x in errors if x["type"] == "extra_forbidden"),
             next((x for x in errors if x["type"] != "string_type"), errors[0]))
    loc = tuple(p for p in e["loc"] if not (isinstance(p, str) and p in _UNION_BRANCHES))
    path = ".".join(clip(p) for p in loc) or "(top level)"
    if e["type"] == "extra_forbidden":
        key = str(loc[-1])
        hint = difflib.get_close_matches(key, _fields_at(model, loc), n=1) if len(key) <= 200 else []
        fix = f"did you mean '{hint[0]}'?" if hint else "remove it"
        return one_line(f"{source}: unknown key '{path}' ({fix})")
    if e["type"] == "union_tag_invalid":
        ctx = e.get("ctx", {})
        return one_line(f"{source}: {path}.type: unknown backend type '{clip(ctx.get('tag'))}' "
                        f"(use one of {ctx.get('expected_tags')})")
    if e["type"] == "finite_number":  # NaN / .inf: say which, and that the key needs a real number
        return one_line(f"{source}: {path}: must be a finite number, got {clip(e.get('input'))} "
                        "(NaN and infinity are not accepted)")
    more = f" (+{len(errors) - 1} more)" if len(errors) > 1 and e is errors[0] else ""
    bound = _bound_message(e)
    if bound:
        return one_line(f"{source}: {path}: {bound}{more}")
    msg = e["msg"].removeprefix("Value error, ")
    return one_line(f"{source}: {path}: {msg}{more}")


def _bound_message(e: dict) -> str | None:
    """A range error with the value given and which way to move it (pydantic's says neither)."""
    ctx, got = e.get("ctx") or {}, clip(e.get("input"), 40)
    for key, op in (("le", "<="), ("lt", "<")):
        if key in ctx and e["type"] in ("less_than_equal", "less_than"):
            return f"{got} is over the limit ({op} {_num(ctx[key])}): no real run needs more, lower it"
    for key, op in (("ge", ">="), ("gt", ">")):
        if key in ctx and e["type"] in ("greater_than_equal", "greater_than"):
            return f"must be {op} {_num(ctx[key])}, got {got}"
    return None


def _num(x: Any) -> str:
    return str(x) if isinstance(x, int) else f"{x:g}"


# ---------------------------------------------------------------- reading files

def read_text_file(path: Path, what: str = "file", max_bytes: int = MAX_CONFIG_BYTES) -> str:
    """A regular file's text (UTF-8, optional BOM), at most `max_bytes`; ConfigError naming the fix otherwise."""
    return decode_utf8(read_bytes(path, what, max_bytes), str(path))


def read_bytes(path: Path, what: str = "file", max_bytes: int = MAX_CONFIG_BYTES) -> bytes:
    """A regular file's bytes, refusing folders, FIFOs and devices before reading and files over `max_bytes`."""
    with open_regular(path, what) as fh:
        data = fh.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise ConfigError(f"{path}: larger than the {max_bytes / 1e6:g} MB limit for a {what}: "
                          "check the path (is this the right file?)")
    return data


def open_regular(path: Path, what: str = "file"):
    """A binary file object for `path` after checking, on the opened descriptor, that it is a regular file.

    Opened non-blocking, so a FIFO is refused instead of waiting forever for a writer.
    """
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except (FileNotFoundError, NotADirectoryError):
        raise ConfigError(f"{path}: file not found (check the path)") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a folder, not a {what} (give the path of the file inside it)") from None
    except PermissionError:
        raise ConfigError(f"{path}: permission denied (make the {what} readable)") from None
    except ValueError:  # an embedded NUL character
        raise ConfigError(f"{clip(path)}: not a valid path (it contains a NUL character)") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be opened ({exc.strerror or exc}): check the path") from None
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise ConfigError(f"{path}: is a folder, not a {what} (give the path of the file inside it)")
        if not stat.S_ISREG(mode):
            kind = "a FIFO" if stat.S_ISFIFO(mode) else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) \
                else "a socket" if stat.S_ISSOCK(mode) else "not a regular file"
            raise ConfigError(f"{path}: is {kind}, not a regular {what} (give the path of a file on disk)")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def decode_utf8(data: bytes, source: str, line_offset: int = 0) -> str:
    """`data` as UTF-8 text (a leading BOM dropped); ConfigError naming the line otherwise."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise ConfigError(f"{source}: is UTF-16 (or UTF-32) text: save it as UTF-8")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = line_offset + data.count(b"\n", 0, exc.start) + 1
        raise ConfigError(f"{source}:{line}: not UTF-8 text (byte 0x{data[exc.start]:02x}): save the file as UTF-8") \
            from None
    if "\x00" in text:
        line = line_offset + text.count("\n", 0, text.index("\x00")) + 1
        raise ConfigError(f"{source}:{line}: contains NUL bytes (a binary or UTF-16 file?): save it as UTF-8 text")
    return text.removeprefix("\ufeff")


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader that counts nesting depth and alias-expanded values as events arrive.

    Events come from PyYAML's non-recursive parser; the composer recurses per level only after an
    event is counted here, so a too-deep or exploding document is refused before it is built.
    """

    def __init__(self, stream: str, source: str):
        super().__init__(stream)
        self._source = source
        self._depth = 0
        self._values = 0
        self._open: list[tuple[str | None, int, int]] = []  # (anchor, values at start, max depth inside)
        self._anchors: dict[str, tuple[int, int]] = {}  # anchor → (values, height)

    def get_event(self):
        ev = super().get_event()
        self._count(ev)
        return ev

    def _too_big(self, ev) -> ConfigError:
        return ConfigError(f"{self._source}:{ev.start_mark.line + 1}: expands to over {MAX_YAML_VALUES:,} "
                           "values (YAML aliases?): a config file needs far fewer; write the values out")

    def _add(self, ev, values: int, height: int) -> None:
        self._values += values
        if self._values > MAX_YAML_VALUES:
            raise self._too_big(ev)
        reach = self._depth + height
        if reach > MAX_YAML_DEPTH:
            raise ConfigError(f"{self._source}:{ev.start_mark.line + 1}: nested more than {MAX_YAML_DEPTH} "
                              "levels deep: a config file needs a handful (check the brackets and indentation)")
        if self._open:
            anchor, start, deepest = self._open[-1]
            self._open[-1] = (anchor, start, max(deepest, reach))

    def _count(self, ev) -> None:
        if isinstance(ev, yaml.ScalarEvent):
            if "\x00" in ev.value:
                raise ConfigError(f"{self._source}:{ev.start_mark.line + 1}: a value contains a NUL "
                                  "character (\\0): remove it")
            if has_surrogate(ev.value):  # a "\ud800" escape: such text cannot be written back as UTF-8
                raise ConfigError(f"{self._source}:{ev.start_mark.line + 1}: a value contains a \\uD800-\\uDFFF "
                                  "escape (half a character): write the character itself")
            self._add(ev, 1, 0)
            if ev.anchor:
                self._anchors[ev.anchor] = (1, 0)
        elif isinstance(ev, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            self._add(ev, 1, 1)
            self._depth += 1
            self._open.append((ev.anchor, self._values, self._depth))
        elif isinstance(ev, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            anchor, start, deepest = self._open.pop()
            self._depth -= 1
            if anchor:
                self._anchors[anchor] = (self._values - start + 1, deepest - self._depth)
            if self._open:
                a, s, d = self._open[-1]
                self._open[-1] = (a, s, max(d, deepest))
        elif isinstance(ev, yaml.AliasEvent):
            if any(a == ev.anchor for a, _, _ in self._open):
                raise ConfigError(f"{self._source}:{ev.start_mark.line + 1}: alias *{clip(ev.anchor)} refers "
                                  "to a value containing itself: write the value out")
            if ev.anchor in self._anchors:  # an undefined alias is the composer's own error
                self._add(ev, *self._anchors[ev.anchor])


def parse_yaml(text: str, source: str) -> Any:
    """YAML text → Python data with bounded depth and size; ConfigError (one line) on any problem."""
    loader = None
    try:
        loader = _BoundedLoader(text, source)  # its reader already refuses non-printable characters
        return loader.get_single_data()
    except ConfigError:
        raise
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        if mark:
            where = f"{mark.line + 1}:"
        elif isinstance(exc, yaml.reader.ReaderError) and isinstance(exc.position, int):
            where = f"{text.count(chr(10), 0, exc.position) + 1}:"
        else:
            where = ""
        problem = getattr(exc, "problem", None) or (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        context = getattr(exc, "context", None)  # e.g. "expected a single document in the stream"
        problem = f"{context}, {problem}" if context and getattr(exc, "problem", None) else problem
        raise ConfigError(f"{source}:{where} not valid YAML ({problem})") from None
    except RecursionError:
        raise ConfigError(f"{source}: nested too deeply to read: a config file needs a handful of levels") from None
    except Exception as exc:  # noqa: BLE001  odd scalars (dates out of range, 5000-digit ints) raise plain errors
        msg = str(exc).partition(";")[0] if "integer string conversion" in str(exc) else str(exc)
        raise ConfigError(f"{source}: not valid YAML: a value cannot be read ({clip(msg, 160)}): fix that value") \
            from None
    finally:
        if loader is not None:
            loader.dispose()


def read_yaml(path: Path, what: str = "YAML config file") -> Any:
    """The one reader of scenario, SLA and matrix YAML: checked file, UTF-8, bounded parse."""
    return parse_yaml(read_text_file(Path(path), what), str(path))
