"""Hypothesis set-up shared by the fuzz tests: repeatable settings, and byte mutations of valid
messages."""

from __future__ import annotations

from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st


def fuzz(examples: int) -> settings:
    return settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=True,  # the same examples every run: a CI failure reproduces locally
        phases=(Phase.explicit, Phase.generate, Phase.shrink),  # no .hypothesis/ files
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )


def mutations(
    valid: list[bytes], tokens: list[bytes], most_repeats: int
) -> st.SearchStrategy[bytes]:
    """One of `valid` with 1 to 6 edits: a token or a few bytes inserted, bytes deleted, a byte
    replaced by a token, a run repeated (2 to `most_repeats` times), a bit flipped."""

    @st.composite
    def mutated(draw: st.DrawFn) -> bytes:
        data = bytearray(draw(st.sampled_from(valid)))
        for _ in range(draw(st.integers(1, 6))):
            at = draw(st.integers(0, len(data)))
            action = draw(st.sampled_from(["insert", "delete", "replace", "repeat", "flip"]))
            if action == "insert":
                data[at:at] = draw(st.sampled_from(tokens) | st.binary(max_size=8))
            elif action == "delete":
                del data[at : at + draw(st.integers(1, 8))]
            elif action == "replace":
                data[at : at + 1] = draw(st.sampled_from(tokens))
            elif action == "repeat":
                data[at:at] = data[at : at + draw(st.integers(1, 64))] * draw(
                    st.integers(2, most_repeats)
                )
            elif data and at < len(data):
                data[at] ^= 1 << draw(st.integers(0, 7))
        return bytes(data)

    return mutated()
