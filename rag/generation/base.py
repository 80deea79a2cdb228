"""The generator plug-in point: the ``Generator`` protocol, the optional ``Chooser`` ability, and their error."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Protocol, runtime_checkable


@runtime_checkable
class Generator(Protocol):
    """Streams the answer to a chat prompt, piece of text by piece of text.

    ``stop``: strings that end the reply (the text before the first one is all that is streamed, give or take the
    piece that contained it). ``citations``: the ``[n]`` markers the reply may contain; a backend that can constrain
    decoding keeps to them, another may ignore them (the bottom-line checks remove markers to anything else).
    A backend may also have a ``warning`` attribute: a problem to show with every answer (the local backend's
    trained weights could not be loaded, say).
    """

    name: str

    def stream(self, system: str, user: str, max_new_tokens: int, stop: Sequence[str] = (),
               citations: Sequence[int] = ()) -> Iterator[str]: ...


@runtime_checkable
class Chooser(Protocol):
    """A generator that can score fixed answers instead of writing free text (used for yes/no/maybe decisions)."""

    def choose(self, system: str, user: str, options: list[str]) -> dict[str, float]: ...


class GeneratorError(RuntimeError):
    """The model could not be loaded or called; the message says what to do."""
