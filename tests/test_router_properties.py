"""Property tests of the router: a generated route table, every concrete path of it looked up.

The reference is a plain scan: among the templates whose segments all fit the path (a static
segment equal, a parameter any non-empty segment), the one that prefers a static segment at
the first place where they differ wins, as OpenAPI asks (concrete paths before templated
ones). The radix tree must find that one, with the parameters' raw values, and nothing for a
path that no template fits. ``PROPERTY_EXAMPLES`` sets the examples per test.
"""
from __future__ import annotations

import os

from hypothesis import given, settings
from hypothesis import strategies as st

from brrt_actors.router import Router

EXAMPLES = int(os.environ.get("PROPERTY_EXAMPLES", "60"))
PROPERTY = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None)

# Few static words, so that parameters and static segments collide often.
STATIC = ("a", "b", "users", "v1")
SEGMENT_TEXT = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="/"),
                       min_size=1, max_size=6)
Template = tuple[str | None, ...]  # a static word, or None for a parameter


def _template_text(template: Template) -> str:
    # NOTE: parameters are named by depth, so two templates never name one place twice.
    return "/" + "/".join(word if word is not None else f"{{p{depth}}}"
                          for depth, word in enumerate(template))


TEMPLATES = st.lists(st.lists(st.sampled_from([*STATIC, None]), min_size=1, max_size=4)
                     .map(tuple), min_size=1, max_size=12, unique=True)


def _fits(template: Template, segments: list[str]) -> bool:
    return len(template) == len(segments) and all(
        (segment != "") if word is None else segment == word
        for word, segment in zip(template, segments, strict=True))


def expected(templates: list[Template], path: str) -> Template | None:
    """The reference: the fitting template that is static earliest."""
    segments = path[1:].split("/")
    fitting = [template for template in templates if _fits(template, segments)]
    if not fitting:
        return None
    return min(fitting, key=lambda template: tuple(word is None for word in template))


def build(templates: list[Template]) -> Router[str]:
    router: Router[str] = Router()
    for template in templates:
        router.add("GET", _template_text(template), _template_text(template))
    return router


@PROPERTY
@given(TEMPLATES, st.data())
def test_every_concrete_path_finds_its_template(templates: list[Template],
                                                data: st.DataObject) -> None:
    router = build(templates)
    for template in templates:
        values = [data.draw(st.sampled_from(STATIC) | SEGMENT_TEXT) if word is None else word
                  for word in template]
        path = "/" + "/".join(values)
        want = expected(templates, path)
        assert want is not None  # the template it was made from fits
        match = router.lookup(path)
        assert match is not None, path
        assert match.template == _template_text(want), path
        assert match.methods == {"GET": _template_text(want)}
        assert match.raw_params == {f"p{depth}": values[depth]
                                    for depth, word in enumerate(want) if word is None}


@PROPERTY
@given(TEMPLATES)
def test_static_beats_parameter(templates: list[Template]) -> None:
    router = build(templates)
    for template in templates:
        # A path spelled with the static words only, where the template has parameters.
        for word in STATIC:
            path = "/" + "/".join(word if part is None else part for part in template)
            want = expected(templates, path)
            match = router.lookup(path)
            assert match is not None and want is not None
            assert match.template == _template_text(want), path


@PROPERTY
@given(TEMPLATES, st.lists(st.sampled_from(STATIC) | SEGMENT_TEXT | st.just(""),
                           min_size=1, max_size=5))
def test_any_path_finds_the_reference_answer(templates: list[Template],
                                             segments: list[str]) -> None:
    path = "/" + "/".join(segments)
    want = expected(templates, path)
    match = build(templates).lookup(path)
    if want is None:
        assert match is None, path
    else:
        assert match is not None and match.template == _template_text(want), path
