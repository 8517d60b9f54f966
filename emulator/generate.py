"""Seeded fake content: plausible text, values conforming to a JSON Schema, and the fallback reply.

Everything is a pure function of a seed and some keys: `Generator.rng(*keys)` hashes `(seed, keys)` with
BLAKE2b (never Python's salted `hash()`), so identical requests get identical answers in every process.
Faker instances are built once per locale and re-seeded from that random source right before each use.
Prose (the fallback reply's text) is faker's lorem for the locale, its word list taken once, drawn from
BLAKE2b in counter mode (`Draws`): seeding a Mersenne Twister costs about 5 µs, the whole sentence less.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import random
import re
import string
import struct
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC
from re import _constants as sre  # type: ignore[attr-defined]  # re's own parser, to generate what a pattern matches
from re import _parser as sre_parse  # type: ignore[attr-defined]
from typing import Any, TypeGuard

import re2
from faker import Faker

from emulator.exchange import ESTIMATED, Choice, Exchange, Message, Reply, Tool, ToolCall

__all__ = ["Draws", "Generator", "generated_reply"]


class Generator:
    """Deterministic fake content for one seed and default locale."""

    def __init__(self, seed: int = 0, locale: str = "en_US") -> None:
        self.seed = seed
        self.locale = locale
        _lorem(locale)  # the word list read now, not on the first request

    def rng(self, *keys: Any) -> random.Random:
        """A random source that depends only on the seed and `keys` (plain values: str, int, tuples, …)."""
        digest = hashlib.blake2b(repr((self.seed, keys)).encode(), digest_size=8).digest()
        return random.Random(int.from_bytes(digest, "big"))

    def draws(self, *keys: Any) -> Draws:
        """Like `rng`, for the few draws of a piece of prose: nothing to seed."""
        return Draws(repr((self.seed, keys)).encode())

    def text(self, *keys: Any, sentences: tuple[int, int] = (1, 3), locale: str | None = None) -> str:
        """Between `sentences[0]` and `sentences[1]` sentences of the locale's lorem words."""
        lorem = _lorem(locale or self.locale)
        low, high = sentences
        values = self.draws("text", *keys).take(1 + high)  # the count, then a sentence for each place
        pool = lorem.sentences
        picks = values[1 : 1 + low + values[0] % (high - low + 1)]
        return lorem.separator.join([pool[value % _Lorem.POOL] for value in picks])

    def from_schema(self, schema: Mapping[str, Any] | bool, *keys: Any) -> Any:
        """A value valid against the JSON Schema `schema` (best effort for patterns and `oneOf`)."""
        rng = self.rng("schema", *keys)
        with _seeded_faker(self.locale, rng) as fake:
            return _SchemaValues(schema, rng, fake).value(schema)


class Draws:
    """Uniform 32-bit integers from BLAKE2b(material) in counter mode, 16 to a block."""

    __slots__ = ("_key", "_block", "_values")

    def __init__(self, material: bytes) -> None:
        self._key = hashlib.blake2b(material).digest()  # the first block, and the key of the next ones
        self._block = 0
        self._values = list(_BLOCK.unpack(self._key))

    def take(self, count: int) -> list[int]:
        """The next `count` values; `value % n` is uniform in [0, n) for n up to a few thousand (bias < 10⁻⁶)."""
        values = self._values
        while len(values) < count:
            self._block += 1
            values += _BLOCK.unpack(hashlib.blake2b(self._block.to_bytes(8, "little"), key=self._key).digest())
        taken, self._values = values[:count], values[count:]
        return taken

    def below(self, n: int) -> int:
        """An integer in [0, n)."""
        return self.take(1)[0] % n


_BLOCK = struct.Struct("<16I")


class _Lorem:
    """Sentences as faker's lorem `sentence()` writes them for one locale (its words, connector and punctuation),
    a pool of them made once: a reply picks whole sentences, a few draws instead of one per word."""

    POOL = 8192  # sentences per locale: ~0.5 MB, made in ~20 ms

    def __init__(self, locale: str) -> None:
        fake, _ = _faker(locale)
        provider = next(p for p in fake.get_providers() if type(p).__module__.startswith("faker.providers.lorem"))
        words: tuple[str, ...] = tuple(provider.get_words_list())
        connector, punctuation = provider.word_connector, provider.sentence_punctuation
        draws = Draws(repr(("lorem", locale)).encode())
        pool = []
        for _ in range(self.POOL):
            count = max(int(6 * (60 + draws.below(81)) / 100), 1)  # six words ± 40%, as faker's sentence()
            chosen = [words[value % len(words)] for value in draws.take(count)]
            chosen[0] = chosen[0].title()
            pool.append(connector.join(chosen) + punctuation)
        self.sentences: tuple[str, ...] = tuple(pool)
        self.separator = "" if locale[:2] in ("zh", "ja") else " "  # between sentences


@functools.cache
def _lorem(locale: str) -> _Lorem:
    return _Lorem(locale)


@functools.cache
def _faker(locale: str) -> tuple[Faker, threading.Lock]:
    return Faker(locale), threading.Lock()


@contextmanager
def _seeded_faker(locale: str, rng: random.Random) -> Iterator[Faker]:
    # One shared instance per locale: the lock keeps seeding and use together when threads share it.
    fake, lock = _faker(locale)
    with lock:
        fake.seed_instance(rng.getrandbits(64))
        yield fake


# ---------------------------------------------------------------------------------------------------------------
# JSON Schema values

_SOFT_DEPTH = 5  # deeper: only required properties, minimum array sizes, non-recursive branches
_HARD_DEPTH = 32  # deeper: give up (a recursive schema without a finite instance)
_MAX_REF_HOPS = 32
# What one generated value may grow to: a request's own tool schema (minLength: 10**9, nested minItems, a pattern
# such as ((a{1000}){1000}){1000}) must not cost the server more than this. Past it, values are cut short.
_MAX_VALUES = 1_000  # values in one generated instance
_MAX_TEXT = 4_000  # characters of one generated string
_WORDS = 500  # distinct words asked of faker at once (its word lists hold about a thousand)
_PATTERN_OPTIONS = re2.Options()
_PATTERN_OPTIONS.log_errors = False

_LOWER_BOUNDS = frozenset({"minimum", "exclusiveMinimum", "minLength", "minItems", "minProperties"})
_UPPER_BOUNDS = frozenset({"maximum", "exclusiveMaximum", "maxLength", "maxItems", "maxProperties"})
_OBJECT_KEYS = frozenset({"properties", "required", "additionalProperties", "patternProperties", "minProperties"})
_ARRAY_KEYS = frozenset({"items", "prefixItems", "minItems", "maxItems", "uniqueItems", "contains"})
_STRING_KEYS = frozenset({"minLength", "maxLength", "pattern", "format"})
_NUMBER_KEYS = frozenset({"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"})

# Property name (lower-cased, without "_" and "-") → faker method giving a nicer string.
_NAME_HINTS = {
    "name": "name",
    "fullname": "name",
    "firstname": "first_name",
    "lastname": "last_name",
    "username": "user_name",
    "city": "city",
    "location": "city",
    "country": "country",
    "address": "address",
    "street": "street_address",
    "zip": "postcode",
    "zipcode": "postcode",
    "postcode": "postcode",
    "postalcode": "postcode",
    "email": "ascii_email",
    "phone": "phone_number",
    "phonenumber": "phone_number",
    "company": "company",
    "job": "job",
    "url": "url",
    "website": "url",
    "color": "color_name",
    "currency": "currency_code",
    "language": "language_name",
    "title": "catch_phrase",
    "description": "sentence",
    "summary": "sentence",
    "message": "sentence",
    "content": "sentence",
    "comment": "sentence",
    "query": "sentence",
    "text": "sentence",
}

_FORMATS: dict[str, Callable[[Faker, random.Random], str]] = {
    "date-time": lambda fake, rng: fake.date_time(tzinfo=UTC).isoformat(timespec="seconds"),
    "date": lambda fake, rng: fake.date(),
    "time": lambda fake, rng: fake.time() + "Z",
    "duration": lambda fake, rng: f"P{rng.randint(1, 30)}D",
    "email": lambda fake, rng: fake.ascii_email(),
    "idn-email": lambda fake, rng: fake.ascii_email(),
    "uri": lambda fake, rng: fake.url(),
    "url": lambda fake, rng: fake.url(),
    "iri": lambda fake, rng: fake.url(),
    "uri-reference": lambda fake, rng: fake.url(),
    "iri-reference": lambda fake, rng: fake.url(),
    "uuid": lambda fake, rng: str(uuid.UUID(int=rng.getrandbits(128), version=4)),
    "ipv4": lambda fake, rng: fake.ipv4(),
    "ipv6": lambda fake, rng: fake.ipv6(),
    "hostname": lambda fake, rng: fake.hostname(),
    "idn-hostname": lambda fake, rng: fake.hostname(),
    "json-pointer": lambda fake, rng: "/" + fake.word(),
    "regex": lambda fake, rng: "^[a-z]+$",
}

_FALLBACK_STRINGS = ("example", "a", "A", "0", "abc", "ABC", "123", "a1", "")


class _SchemaValues:
    """One `from_schema` run: the root schema (for `$ref`), the random source and the seeded faker."""

    def __init__(self, root: Mapping[str, Any] | bool, rng: random.Random, fake: Faker) -> None:
        self.root = root
        self.rng = rng
        self.fake = fake
        self.values_left = _MAX_VALUES

    def value(self, schema: Mapping[str, Any] | bool | None, depth: int = 0, name: str = "") -> Any:
        self.values_left -= 1
        if schema is False or depth > _HARD_DEPTH or self.values_left < 0:
            return None  # nothing is valid, or the instance is as large as one may grow
        schema = self._flatten(schema if isinstance(schema, Mapping) else {}, depth)
        if "const" in schema:
            return _copy(schema["const"])
        if schema.get("enum"):
            return _copy(self.rng.choice(schema["enum"]))
        kind = self._kind(schema, depth)
        if kind == "any":  # an unconstrained schema such as {}
            kind = self.rng.choice(("string", "integer", "boolean"))
        if kind == "object":
            return self._object(schema, depth, name)
        if kind == "array":
            return self._array(schema, depth, name)
        if kind == "string":
            return self._string(schema, name)
        if kind in ("integer", "number"):
            return _number(schema, self.rng, integer=kind == "integer")
        if kind == "boolean":
            return self.rng.random() < 0.5
        return None  # "null", or a type name JSON Schema does not define

    # -- combinators ------------------------------------------------------------------------------------------

    def _flatten(self, schema: Mapping[str, Any], depth: int) -> Mapping[str, Any]:
        """Resolve `$ref`, `allOf` and `anyOf`/`oneOf` (one branch picked) into a single schema."""
        for _ in range(_MAX_REF_HOPS):
            if "$ref" in schema:
                schema = _merge(self._resolve(schema["$ref"]), _without(schema, "$ref"))
            elif "allOf" in schema:
                merged = _without(schema, "allOf")
                for part in schema["allOf"]:
                    merged = _merge(merged, self._flatten(part if isinstance(part, Mapping) else {}, depth))
                schema = merged
            elif "anyOf" in schema or "oneOf" in schema:
                key = "anyOf" if "anyOf" in schema else "oneOf"
                schema = _merge(_without(schema, key), self._branch(schema[key], depth))
            else:
                return schema
        return {}

    def _branch(self, options: Sequence[Any], depth: int) -> Mapping[str, Any]:
        if depth >= _SOFT_DEPTH:  # steer recursive schemas towards their base case
            options = [o for o in options if isinstance(o, Mapping) and "$ref" not in o] or options
        chosen = self.rng.choice(options) if options else {}
        return chosen if isinstance(chosen, Mapping) else {}

    def _resolve(self, ref: str) -> Mapping[str, Any]:
        """A `#/...` JSON pointer into the root schema; anything else is an unconstrained schema."""
        if not ref.startswith("#"):
            return {}
        node: Any = self.root
        for part in filter(None, ref[1:].split("/")):
            part = part.replace("~1", "/").replace("~0", "~")
            node = node.get(part) if isinstance(node, Mapping) else None
        return node if isinstance(node, Mapping) else {}

    def _kind(self, schema: Mapping[str, Any], depth: int) -> str:
        kind = schema.get("type")
        if isinstance(kind, str):
            return kind
        if isinstance(kind, list) and kind:
            if depth >= _SOFT_DEPTH and "null" in kind:
                return "null"
            return self.rng.choice(kind)
        for keys, inferred in (
            (_OBJECT_KEYS, "object"),
            (_ARRAY_KEYS, "array"),
            (_STRING_KEYS, "string"),
            (_NUMBER_KEYS, "number"),
        ):
            if not keys.isdisjoint(schema):
                return inferred
        return "any"

    # -- containers -------------------------------------------------------------------------------------------

    def _object(self, schema: Mapping[str, Any], depth: int, name: str) -> dict[str, Any]:
        properties: Mapping[str, Any] = schema.get("properties") or {}
        extra = schema.get("additionalProperties", True)
        result: dict[str, Any] = {}
        for key in self._object_keys(schema, properties, depth):
            sub = properties[key] if key in properties else (extra if isinstance(extra, Mapping) else {})
            result[key] = self.value(sub, depth + 1, key)
        open_ended = "properties" not in schema and depth < _SOFT_DEPTH  # a bare {"type": "object"}: invent a few keys
        wanted = _bounded(schema.get("minProperties", self.rng.randint(1, 3) if open_ended else 0), self.values_left)
        if extra is not False and "patternProperties" not in schema and len(result) < wanted:
            for key in self._new_keys(wanted - len(result) + len(properties)):
                if key not in result and key not in properties and len(result) < wanted:
                    result[key] = self.value(extra, depth + 1, key)
        return result

    def _new_keys(self, count: int) -> list[str]:
        """Distinct property names: words, then numbered ones once faker's word list runs out."""
        words = self.fake.words(min(count, _WORDS), unique=True)
        return words + [f"{words[i % len(words)] if words else 'key'}_{i}" for i in range(count - len(words))]

    def _object_keys(self, schema: Mapping[str, Any], properties: Mapping[str, Any], depth: int) -> list[str]:
        required = list(dict.fromkeys(schema.get("required") or ()))
        optional = [key for key in properties if key not in required]
        self.rng.shuffle(optional)
        chosen = [] if depth >= _SOFT_DEPTH else [key for key in optional if self.rng.random() < 0.5]
        missing = schema.get("minProperties", 0) - len(required) - len(chosen)
        if missing > 0:
            chosen += [key for key in optional if key not in chosen][:missing]
        room = schema.get("maxProperties", len(required) + len(chosen)) - len(required)
        kept = set(chosen[: max(room, 0)])
        return [key for key in properties if key in kept or key in required] + [
            key for key in required if key not in properties
        ]

    def _array(self, schema: Mapping[str, Any], depth: int, name: str) -> list[Any]:
        items = schema.get("items", {})
        prefix = schema.get("prefixItems") or (items if isinstance(items, list) else [])
        rest = items if not isinstance(items, list) else schema.get("additionalItems", {})
        low = _bounded(schema.get("minItems", 0), self.values_left)
        high = schema.get("maxItems", low + 3)
        if rest is False:
            high = min(high, len(prefix))
        count = low if depth >= _SOFT_DEPTH else self._array_length(low, high)
        unique = schema.get("uniqueItems", False)
        result: list[Any] = []
        seen: set[str] = set()
        for _ in range(count * 10 + 10):
            if len(result) >= count or self.values_left < 0:
                break
            item = self.value(prefix[len(result)] if len(result) < len(prefix) else rest, depth + 1, name)
            if self.values_left < 0:  # the budget ran out while making it (uniqueItems retries can): not kept
                break
            if unique:
                key = json.dumps(item, sort_keys=True)
                if key in seen:
                    continue
                seen.add(key)
            result.append(item)
        return result

    def _array_length(self, low: int, high: int) -> int:
        """Usually 1–3 items more than the minimum (at least one), within the maximum."""
        return self.rng.randint(min(max(low, 1), high), max(low, min(high, low + 3)))

    # -- strings ----------------------------------------------------------------------------------------------

    def _string(self, schema: Mapping[str, Any], name: str) -> str:
        low = _bounded(schema.get("minLength", 0), _MAX_TEXT)
        high = schema.get("maxLength")
        if "pattern" in schema:
            return self._pattern_string(schema["pattern"], low, high)
        make_format = _FORMATS.get(schema.get("format", ""))
        if make_format is not None:
            return make_format(self.fake, self.rng)
        return self._fit(self._hinted(name), low, high)

    def _hinted(self, name: str) -> str:
        method = _NAME_HINTS.get(name.lower().replace("_", "").replace("-", ""))
        make = getattr(self.fake, method, None) if method else None
        return str(make()) if make is not None else self.fake.word()

    def _fit(self, text: str, low: int, high: int | None) -> str:
        if len(text) < low:
            words = [text]
            size = len(text)
            while size < low:
                words.append(self.fake.word())
                size += len(words[-1]) + 1
            text = " ".join(words)
        if high is not None and len(text) > high:
            text = text[:high]
            if text.endswith(" ") and len(text) > low:
                text = text[:-1]
        return text

    def _pattern_string(self, pattern: str, low: int, high: int | None) -> str:
        candidate = None
        for _ in range(8):
            candidate = _from_pattern(pattern, self.rng)
            if candidate is None:
                break
            if _string_fits(candidate, pattern, low, high):
                return candidate
        for fallback in _FALLBACK_STRINGS:
            if _string_fits(fallback, pattern, low, high):
                return fallback
        return candidate if candidate is not None else "example"


def _string_fits(text: str, pattern: str, low: int, high: int | None) -> bool:
    if len(text) < low or (high is not None and len(text) > high):
        return False
    try:
        return re2.search(pattern, text, _PATTERN_OPTIONS) is not None  # RE2: linear in the text, whatever the pattern
    except re2.error:
        return True  # not a pattern RE2 reads (lookarounds, backreferences): nothing to check against


def _bounded(value: Any, most: int) -> int:
    """A schema's minimum count (minLength, minItems, minProperties), within what one value may grow to."""
    return min(value, max(most, 0)) if isinstance(value, int) and not isinstance(value, bool) else 0


def _merge(base: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """Both schemas at once (an `allOf` of two), shallowly: tighter bounds, united requirements."""
    merged = dict(base)
    for key, value in extra.items():
        old = merged.get(key)
        if old is None:
            merged[key] = value
        elif key == "properties":
            merged[key] = {**old, **{k: {"allOf": [old[k], v]} if k in old else v for k, v in value.items()}}
        elif key == "required":
            merged[key] = list(dict.fromkeys([*old, *value]))
        elif key in _LOWER_BOUNDS and _is_number(old) and _is_number(value):
            merged[key] = max(old, value)
        elif key in _UPPER_BOUNDS and _is_number(old) and _is_number(value):
            merged[key] = min(old, value)
        elif key == "type":
            merged[key] = _intersect(
                old if isinstance(old, list) else [old], value if isinstance(value, list) else [value]
            )
        elif key == "enum":
            merged[key] = [v for v in old if v in value] or value
        else:
            merged[key] = value
    return merged


def _intersect(first: list[str], second: list[str]) -> list[str]:
    common = [t for t in first if t in second or (t == "integer" and "number" in second)]
    common += [t for t in second if t == "integer" and "number" in first and t not in common]
    return common or second


def _without(schema: Mapping[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in schema.items() if k != key}


def _is_number(value: Any) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _copy(value: Any) -> Any:
    return json.loads(json.dumps(value)) if isinstance(value, dict | list) else value


# -- numbers ------------------------------------------------------------------------------------------------------


def _number(schema: Mapping[str, Any], rng: random.Random, *, integer: bool) -> int | float:
    low, low_open, high, high_open = _bounds(schema)
    if integer:
        low = None if low is None else (math.floor(low) + 1 if low_open else math.ceil(low))
        high = None if high is None else (math.ceil(high) - 1 if high_open else math.floor(high))
        low_open = high_open = False
    if low is None:
        low = 0 if high is None or high >= 0 else high - 100
    if high is None:
        high = max(low, 0) + 100
    step = schema.get("multipleOf")
    if _is_number(step) and step > 0:
        return _multiple(low, low_open, high, high_open, step, rng, integer=integer)
    if integer:
        return rng.randint(int(low), int(high)) if low <= high else low
    value = round(rng.uniform(low, high), 2)
    if value < low or value > high or (low_open and value == low) or (high_open and value == high):
        value = (low + high) / 2
    return value


def _bounds(schema: Mapping[str, Any]) -> tuple[float | None, bool, float | None, bool]:
    """(low, low is exclusive, high, high is exclusive), reading both draft-4 and newer exclusive bounds."""
    low, high = schema.get("minimum"), schema.get("maximum")
    low_open = schema.get("exclusiveMinimum") is True
    high_open = schema.get("exclusiveMaximum") is True
    exclusive_low, exclusive_high = schema.get("exclusiveMinimum"), schema.get("exclusiveMaximum")
    if _is_number(exclusive_low) and (low is None or exclusive_low >= low):
        low, low_open = exclusive_low, True
    if _is_number(exclusive_high) and (high is None or exclusive_high <= high):
        high, high_open = exclusive_high, True
    return low, low_open, high, high_open


def _multiple(
    low: float, low_open: bool, high: float, high_open: bool, step: float, rng: random.Random, *, integer: bool
) -> int | float:
    first, last = math.ceil(low / step), math.floor(high / step)
    first += low_open and first * step <= low
    last -= high_open and last * step >= high
    if first > last:
        return low
    value: int | float = first * step
    for _ in range(12):
        value = rng.randint(first, last) * step
        value = round(value, 12) if isinstance(value, float) else value
        if (value / step).is_integer() and (not integer or float(value).is_integer()):
            break
    return int(value) if integer else value


# -- regex patterns -----------------------------------------------------------------------------------------------

_ALPHABET = string.ascii_letters + string.digits
_CATEGORY_CHARS = {
    sre.CATEGORY_DIGIT: string.digits,
    sre.CATEGORY_NOT_DIGIT: string.ascii_letters,
    sre.CATEGORY_WORD: _ALPHABET + "_",
    sre.CATEGORY_NOT_WORD: " -.,",
    sre.CATEGORY_SPACE: " ",
    sre.CATEGORY_NOT_SPACE: _ALPHABET,
}
_CATEGORY_TESTS: dict[Any, Callable[[str], bool]] = {
    sre.CATEGORY_DIGIT: str.isdigit,
    sre.CATEGORY_NOT_DIGIT: lambda c: not c.isdigit(),
    sre.CATEGORY_WORD: lambda c: c.isalnum() or c == "_",
    sre.CATEGORY_NOT_WORD: lambda c: not (c.isalnum() or c == "_"),
    sre.CATEGORY_SPACE: str.isspace,
    sre.CATEGORY_NOT_SPACE: lambda c: not c.isspace(),
}


class _Unsupported(Exception):
    pass


@functools.lru_cache(maxsize=256)
def _parse(pattern: str) -> Any:
    return sre_parse.parse(pattern)


def _from_pattern(pattern: str, rng: random.Random) -> str | None:
    """A string matching `pattern`, built by walking its parse tree; None for constructs it cannot build."""
    try:
        return _PatternWriter(rng).write(_parse(pattern))
    except (re.error, _Unsupported, KeyError, IndexError):
        return None


class _PatternWriter:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.groups: dict[int, str] = {}
        self.written = 0  # characters so far: a pattern that asks for more than _MAX_TEXT is not written

    def write(self, nodes: Any) -> str:
        text = "".join(self._node(op, arg) for op, arg in nodes)
        self.written += len(text)
        if self.written > _MAX_TEXT:
            raise _Unsupported("longer than a generated string may be")
        return text

    def _node(self, op: Any, arg: Any) -> str:
        match op:
            case sre.LITERAL:
                return chr(arg)
            case sre.NOT_LITERAL:
                return self._char_outside([(sre.LITERAL, arg)])
            case sre.ANY:
                return self.rng.choice(_ALPHABET)
            case sre.IN:
                return self._char_in(arg)
            case sre.MAX_REPEAT | sre.MIN_REPEAT | sre.POSSESSIVE_REPEAT:
                low, high, body = arg
                if low > _MAX_TEXT:
                    raise _Unsupported("longer than a generated string may be")
                return "".join(self.write(body) for _ in range(self.rng.randint(low, min(high, low + 3))))
            case sre.SUBPATTERN:
                group, _, _, body = arg
                text = self.write(body)
                if group:
                    self.groups[group] = text
                return text
            case sre.ATOMIC_GROUP:
                return self.write(arg)
            case sre.BRANCH:
                return self.write(self.rng.choice(arg[1]))
            case sre.GROUPREF:
                return self.groups[arg]
            case sre.AT | sre.ASSERT | sre.ASSERT_NOT:
                return ""  # anchors and lookarounds: the final re.search check decides
        raise _Unsupported(op)

    def _char_in(self, items: list[tuple[Any, Any]]) -> str:
        if items and items[0][0] is sre.NEGATE:
            return self._char_outside(items[1:])
        op, arg = self.rng.choice(items)
        match op:
            case sre.LITERAL:
                return chr(arg)
            case sre.RANGE:
                low, high = arg
                if low <= 0x7E and high >= 0x21:  # prefer printable ASCII within the range
                    low, high = max(low, 0x21), min(high, 0x7E)
                return chr(self.rng.randint(low, high))
            case sre.CATEGORY:
                return self.rng.choice(_CATEGORY_CHARS[arg])
        raise _Unsupported(op)

    def _char_outside(self, items: list[tuple[Any, Any]]) -> str:
        for char in self.rng.sample(_ALPHABET + " -_.,", len(_ALPHABET) + 5):
            if not any(_class_has(op, arg, char) for op, arg in items):
                return char
        raise _Unsupported("negated class")


def _class_has(op: Any, arg: Any, char: str) -> bool:
    match op:
        case sre.LITERAL:
            return ord(char) == arg
        case sre.RANGE:
            return arg[0] <= ord(char) <= arg[1]
        case sre.CATEGORY:
            return _CATEGORY_TESTS[arg](char)
    raise _Unsupported(op)


# ---------------------------------------------------------------------------------------------------------------
# The fallback reply

_JSON_OBJECT_SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "city": {"type": "string"},
        "email": {"type": "string"},
        "company": {"type": "string"},
        "score": {"type": "integer", "minimum": 0, "maximum": 100},
        "active": {"type": "boolean"},
        "summary": {"type": "string"},
    },
    "required": ["name", "summary"],
}

# Words of five letters or more that say nothing about what a tool does.
_COMMON_TEXT = (
    "about above after again against along among another based before being below between called could current "
    "default every example format function given including information input items multiple optional other output "
    "parameter parameters please provide provided query request required result results return returns should "
    "specific specified string their there these thing those through under using value values where which while "
    "within without would"
)
_COMMON_WORDS = frozenset(_COMMON_TEXT.split())
_WORD = re.compile(r"[a-z0-9]+")
_IDENTIFIER = re.compile(r"[\w-]+")  # what a tool name looks like: letters, digits, "_" and "-"
_NAME_PART = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+")


def generated_reply(
    exchange: Exchange, generator: Generator, *, sentences: tuple[int, int] = (1, 3), tool_calls: str = "forced"
) -> Reply:
    """The answer when no scenario rule matches: the same request always gets the same reply.

    Tool calls follow `tool_choice` and the scenarios' `generate.tool_calls` (see `_tools_to_call`); otherwise
    the content follows `response_format`, mentions the tool results it follows, or is generated prose.
    """
    conversation = _conversation_key(exchange)
    return Reply(
        [
            _generated_choice(exchange, generator, (exchange.seed, conversation, index), sentences, tool_calls)
            for index in range(max(exchange.n, 1))
        ],
        ESTIMATED,
    )


def _conversation_key(exchange: Exchange) -> str:
    messages = [
        (m.role, m.text, [(c.name, c.arguments) for c in m.tool_calls], _result_text(m)) for m in exchange.messages
    ]
    tools = [(t.name, t.description) for t in exchange.tools]
    return hashlib.blake2b(repr((exchange.model, messages, tools)).encode(), digest_size=16).hexdigest()


def _result_text(message: Message) -> str | None:
    return message.tool_result.content if message.tool_result is not None else None


def _generated_choice(
    exchange: Exchange, generator: Generator, keys: tuple[Any, ...], sentences: tuple[int, int], tool_calls: str
) -> Choice:
    reasoning = generator.text("reasoning", *keys, sentences=(2, 4)) if exchange.reasoning else None
    if exchange.tools:  # which tools, and the calls' ids, draw from this (a seeded rng costs: only when needed)
        rng = generator.rng("choice", *keys)
        tools = _tools_to_call(exchange, rng, tool_calls)
        if tools:
            calls = [_tool_call(tool, generator, rng, (*keys, position)) for position, tool in enumerate(tools)]
            return Choice(reasoning=reasoning, tool_calls=calls)
    return Choice(content=_content(exchange, generator, keys, sentences), reasoning=reasoning)


def _tools_to_call(exchange: Exchange, rng: random.Random, tool_calls: str = "forced") -> list[Tool]:
    """Which tools the reply calls.

    "none" or no tools: none. "function": the named tool. "required": the tools the user's last message
    mentions, else random ones; one, or up to two when parallel calls are allowed. "auto": none — an agent
    runs whatever it is handed, so an invented call is never safe — unless `tool_calls` is "auto"
    (`settings.generate.tool_calls`): then the mentioned tools (up to two with parallel calls), unless the last
    message is a tool result, which gets a text answer.
    """
    tools, choice = exchange.tools, exchange.tool_choice
    if not tools or choice.mode == "none":
        return []
    if choice.mode == "function":
        return [tool for tool in tools if tool.name == choice.name][:1]
    limit = 2 if exchange.parallel_tool_calls and len(tools) > 1 else 1
    mentioned = _mentioned_tools(exchange.last_user_text, tools)
    if choice.mode == "required":
        others = [tool for tool in tools if tool not in mentioned]
        rng.shuffle(others)
        return (mentioned + others)[: rng.randint(1, limit)]
    if tool_calls != "auto" or (exchange.messages and exchange.messages[-1].role == "tool"):
        return []
    return mentioned[:limit]


def _mentioned_tools(text: str, tools: Sequence[Tool]) -> list[Tool]:
    """Tools whose name is a word of `text`, or one of whose keywords is."""
    lowered = text.lower()
    words = set(_WORD.findall(lowered)) | set(_IDENTIFIER.findall(lowered))
    return [tool for tool in tools if tool.name.lower() in words or not words.isdisjoint(_keywords(tool))]


def _keywords(tool: Tool) -> frozenset[str]:
    return _keywords_of(tool.name, tool.description)


@functools.lru_cache(maxsize=1024)
def _keywords_of(name: str, description: str) -> frozenset[str]:
    """Words of five letters or more from the tool's name parts and description, minus common ones."""
    words = [part.lower() for part in _NAME_PART.findall(name)] + _WORD.findall(description.lower())
    return frozenset(word for word in words if len(word) >= 5 and word not in _COMMON_WORDS)


def _tool_call(tool: Tool, generator: Generator, rng: random.Random, keys: tuple[Any, ...]) -> ToolCall:
    arguments = generator.from_schema(tool.parameters, "arguments", *keys) if tool.parameters else {}
    return ToolCall(
        id=f"call_{rng.getrandbits(96):024x}", name=tool.name, arguments=json.dumps(arguments, ensure_ascii=False)
    )


def _content(exchange: Exchange, generator: Generator, keys: tuple[Any, ...], sentences: tuple[int, int]) -> str:
    response_format = exchange.response_format
    if response_format.type == "json_schema" and response_format.schema is not None:
        return json.dumps(generator.from_schema(response_format.schema, "content", *keys), ensure_ascii=False)
    if response_format.type in ("json_object", "json_schema"):
        return json.dumps(generator.from_schema(_JSON_OBJECT_SCHEMA, "content", *keys), ensure_ascii=False)
    prose = generator.text("content", *keys, sentences=sentences)
    results = _trailing_tool_results(exchange.messages)
    if not results:
        return prose
    return " ".join([*(f"{name} returned {_excerpt(content)}." for name, content in results), prose])


def _trailing_tool_results(messages: Sequence[Message]) -> list[tuple[str, str]]:
    results: list[tuple[str, str]] = []
    for message in reversed(messages):
        if message.role != "tool" or message.tool_result is None:
            break
        results.append((message.tool_result.name or "The tool", message.tool_result.content))
    return results[::-1]


def _excerpt(text: str, limit: int = 200) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
