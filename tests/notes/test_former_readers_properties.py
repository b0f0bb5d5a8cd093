"""Former readers, as a property: in the random worlds of tests/sharing/test_read_rule_properties
(organisations, users, alliances, memberships in every state, coordinators, notes of every TLP,
RED recipients, retractions), the principals told of a retracted note (its tombstone) are
exactly those the independent model there lets read it once the retraction is taken away,
at read time; nobody else, and nobody for a note that is not retracted. And the note's page
answers each reader accordingly: 200, 410 with the tombstone, or the 404 of nothing."""
from hypothesis import given, settings

from alliance.sharing.policy import former_reader, get_retracted_note_for_former_reader
from tests import factories
from tests.sharing.test_read_rule_properties import (
    SETTINGS,
    Model,
    _former_in_model,
    _with_examples,
    build,
    principals,
    worlds,
)


@settings(SETTINGS, max_examples=30)
@given(world=worlds())
@_with_examples
def test_former_readers_are_the_rule_without_its_retraction(db, world):
    built = build(world)
    model = Model(world)
    for label, principal, u in principals(built, model):
        for i, note in enumerate(built.notes):
            expected = _former_in_model(world, u, i)
            assert former_reader(principal, note) == expected, (label, i, world.notes[i])
            found = get_retracted_note_for_former_reader(principal, note.report_id)
            assert (found is not None) == expected, (label, i)


@settings(SETTINGS, max_examples=10)
@given(world=worlds())
def test_the_note_page_answers_each_user_as_the_models_say(db, app, world):
    built = build(world)
    model = Model(world)
    client = app.test_client()
    for u, user in enumerate(built.users):
        if not model.usable(u):
            continue
        factories.login(client, user)
        for i, note in enumerate(built.notes):
            status = client.get(f"/notes/{note.uuid}").status_code
            expected = 200 if model.may_read(u, i) else 410 if _former_in_model(world, u, i) \
                else 404
            assert status == expected, (u, i, world.notes[i])
