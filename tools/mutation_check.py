"""Mutation check: break each critical line on purpose and make sure a named test notices.

Each entry of MUTATIONS below is one line: the file, an exact snippet of its source (found
exactly once), what to put instead, and the test node ids that must fail with it. The tree is
copied once to a scratch directory (without .venv and .git); each mutation is written there, the
tests run with this interpreter from the scratch copy (cwd and PYTHONPATH set to it, so the
scratch code is what is imported, checked before anything runs), and the file is put back
(with its own mtime, so no cached bytecode of one version ever stands in for another).

    killed     a named test failed: the line is guarded
    survived   every named test passed with the line broken: a gap in the tests
    stale      the snippet is not in the source exactly once any more: update the entry

Exit status 1 on any survivor, any stale entry, or when the named tests fail even without a
mutation (then "killed" would prove nothing). SQLite only (WELFARE_TEST_POSTGRES_URL is dropped)
to keep it fast; the browser tests are never named here.

    .venv/bin/python tools/mutation_check.py            # every mutation
    .venv/bin/python tools/mutation_check.py gate site  # those whose name contains a word

Append a mutation as one more `M(...)` line; name the tests that pin the behaviour, not the
whole suite (each mutation costs one pytest start-up plus its tests).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class M:
    name: str
    file: str
    snippet: str
    replacement: str
    tests: tuple[str, ...]


D = "tests/notifications/test_dispatcher.py::"
CHECKIN = "tests/notifications/test_checkin_calls.py::"
WEBHOOKS = "tests/api/test_webhooks.py::"
RACES = "tests/welfare/test_incident_races.py::"
ACTIONS = "tests/api/test_incident_actions.py::"
NO5XX = "tests/api/test_no_5xx.py::"
ALL_CLEAR = "tests/notifications/test_all_clear.py::"
LIMITS = "tests/notifications/test_recipient_limits.py::"

# fmt: off
MUTATIONS: list[M] = [
    # The send gate: nothing goes out once the family confirmed, except the "coming" notice.
    M("gate: confirmed incident still sends", "welfare/delivery.py", "stopped = incident.status not in (IncidentStatus.open, IncidentStatus.notifying)", "stopped = False", (D + "test_the_gate_refuses_a_claimed_row_of_a_confirmed_incident_that_no_stop_reached",)),  # noqa: E501
    M("gate: coming notice stopped too", "welfare/delivery.py", "if stopped and not _wanted_once_stopped(message.template, incident.status):", "if stopped:", (D + "test_after_confirmation_only_the_coming_notice_goes_out", ALL_CLEAR + "test_the_gate_lets_the_all_clear_through_a_closed_incident_and_stops_every_escalation_row")),  # noqa: E501
    # The all-clear (issue 15, item 4): only to contacts sent something, only once closed.
    M("gate: all-clear through a running incident", "welfare/delivery.py", "    return template in AFTER_CLOSE and status in CLOSED", "    return template in AFTER_CLOSE", (ALL_CLEAR + "test_the_gate_refuses_an_all_clear_while_the_incident_is_only_confirmed",)),  # noqa: E501
    M("gate: every template passes a closed incident", "welfare/delivery.py", "    return template in AFTER_CLOSE and status in CLOSED", "    return status in CLOSED", (ALL_CLEAR + "test_the_gate_lets_the_all_clear_through_a_closed_incident_and_stops_every_escalation_row",)),  # noqa: E501
    M("all-clear: to contacts never contacted", "welfare/incidents/service.py", "col(OutboxMessage.status).in_(REACHED),", "col(OutboxMessage.status).is_not(None),", (ALL_CLEAR + "test_resolving_sends_the_son_one_all_clear_in_chinese_and_the_daughter_nothing",)),  # noqa: E501
    M("all-clear: despite an SMS opt-out", "welfare/incidents/service.py", "        if contact is None or kind is None:\n            continue\n        message = outbox.enqueue(", "        if contact is None:\n            continue\n        kind = kind or ChannelKind.sms\n        message = outbox.enqueue(", (ALL_CLEAR + "test_a_contact_who_opted_out_of_sms_gets_no_all_clear",)),  # noqa: E501
    M("all-clear: a second one queued", "welfare/incidents/service.py", "            once=True,  # a second all-clear to anyone is refused by the database\n", "", (ALL_CLEAR + "test_resolving_twice_or_a_resolve_racing_a_cancel_sends_one_all_clear",)),  # noqa: E501
    M("gate: confirmation cancels claimed rows", "welfare/incidents/service.py", "col(OutboxMessage.status).in_((OutboxStatus.pending, OutboxStatus.claimed)),", "col(OutboxMessage.status).in_((OutboxStatus.pending,)),", (D + "test_confirmation_racing_a_claimed_row_sends_nothing",)),  # noqa: E501
    # Site scoping: another site's records are absent, one by one and in lists.
    M("site: records of any site", "welfare/authz.py", "if permission in _GLOBAL_PERMISSIONS or actor.in_site(site_id):", "if True:", ("tests/api/test_security.py::test_a_guard_of_site_a_reaches_nothing_of_site_b",)),  # noqa: E501
    M("site: lists of every site", "welfare/authz.py", "if actor.is_system or permission in _GLOBAL_PERMISSIONS:\n        return None", "if True:\n        return None", ("tests/api/test_security.py::test_a_guard_of_site_a_reaches_nothing_of_site_b",)),  # noqa: E501
    # Twilio webhooks: only Twilio's signature for the public URL opens them.
    M("twilio: signature not checked", "notifications/twilio/webhooks.py", "if not validator.validate(url, params, signature, algorithm=algorithm):", "if False:", (WEBHOOKS + "test_unsigned_and_forged_webhooks_are_refused", WEBHOOKS + "test_a_signature_for_another_url_or_other_fields_is_refused")),  # noqa: E501
    M("twilio: signed for the request url", "api/routes/webhooks.py", "url = webhooks.public_url(settings, request.scope[\"route\"].path, request.url.query)", "url = str(request.url)", (WEBHOOKS + "test_the_signature_is_checked_against_the_public_url_not_the_request_url",)),  # noqa: E501
    # Webhook de-duplication: Twilio retries a callback; it is acted on once.
    M("webhooks: repeats acted on again", "notifications/status.py", "    if session.get(WebhookReceipt, key) is not None:\n        return False\n    return insert_unless_conflict(", "    return True\n    return insert_unless_conflict(", (WEBHOOKS + "test_a_repeated_keypress_callback_records_and_confirms_once", WEBHOOKS + "test_a_duplicate_inbound_message_records_once", "tests/notifications/test_webhooks.py::test_repeated_status_news_is_recorded_once")),  # noqa: E501
    # Erasure: withdrawing the registry consent deletes the contacts (and their numbers).
    M("erasure: contacts kept", "welfare/residents/service.py", "session.exec(delete(Contact).where(col(Contact.resident_id) == resident.id))", "None", ("tests/welfare/test_consent.py::test_withdrawing_the_registry_consent_erases_the_resident", "tests/welfare/test_consent.py::test_erasure_leaves_no_readable_copy_in_the_sqlite_files")),  # noqa: E501
    M("erasure: queued numbers kept", "welfare/incidents/service.py", ".where(col(OutboxMessage.incident_id) == incident.id)\n            .values(to_phone=None, updated_at=now)", ".where(col(OutboxMessage.incident_id) == incident.id)\n            .values(updated_at=now)", ("tests/welfare/test_incidents.py::test_withdrawing_consent_scrubs_the_residents_incidents",)),  # noqa: E501
    # SMS segment limits: every SMS fits in two segments.
    M("segments: three allowed", "notifications/messages.py", "if sms_segments(text) <= MAX_SEGMENTS:", "if sms_segments(text) <= MAX_SEGMENTS + 1:", ("tests/notifications/test_messages.py",)),  # noqa: E501
    M("segments: UCS-2 counted as GSM-7", "notifications/messages.py", "    if is_gsm7(text):\n        units", "    if True:\n        units", ("tests/notifications/test_messages.py",)),  # noqa: E501
    # Escalation timing: contacts two minutes apart, the manager after the list or at ten.
    M("timing: contacts three minutes apart", "welfare/incidents/escalation.py", "contact_interval_seconds: int = 120", "contact_interval_seconds: int = 180", ("tests/welfare/test_escalation.py", "tests/welfare/test_incidents.py::test_escalation_moves_down_the_list_every_two_minutes_then_the_manager")),  # noqa: E501
    M("timing: manager only at ten minutes", "welfare/incidents/escalation.py", "manager_at = min(len(contact_ids) * interval, policy.manager_after_seconds)", "manager_at = policy.manager_after_seconds", ("tests/welfare/test_escalation.py",)),  # noqa: E501
    M("timing: a step a tick late", "welfare/incidents/escalation.py", "due_time(steps, step.index, opened_at, state) <= now", "due_time(steps, step.index, opened_at, state) < now", ("tests/welfare/test_escalation.py", "tests/welfare/test_incidents.py::test_escalation_moves_down_the_list_every_two_minutes_then_the_manager")),  # noqa: E501
    # a. The duty manager's SMS and call are rendered and sent.
    M("a: manager template not rendered", "notifications/dispatcher.py", 'if message.template == "manager_escalation":\n        if call:', 'if message.template == "manager_escalated":\n        if call:', ("tests/notifications/test_manager_escalation.py",)),  # noqa: E501
    M("a: manager step queues another template", "welfare/incidents/service.py", 'template="manager_escalation",', 'template="manager_alert",', ("tests/notifications/test_manager_escalation.py",)),  # noqa: E501
    M("a: manager call reads the concern prompt", "notifications/dispatcher.py", "            return CallScript(text, \"found\", detect_machine=True)\n        return Text.rendered(\n            messages.manager_escalation_sms,", '            return CallScript(text, "concern", detect_machine=True)\n        return Text.rendered(\n            messages.manager_escalation_sms,', ("tests/notifications/test_manager_escalation.py",)),  # noqa: E501
    # b. A call whose number was erased fails for good, in words, and is not retried.
    M("b: send path raises on an erased number", "notifications/dispatcher.py", "raise ChannelError(outbox.ERASED_NUMBER, permanent=True)", "raise AssertionError(outbox.ERASED_NUMBER)", (CHECKIN + "test_a_call_reaching_the_send_without_a_number_fails_for_good_instead_of_looping",)),  # noqa: E501
    M("b: gate cancels an erased number silently", "welfare/delivery.py", "record_failure(\n            session, message, incident, reason=ERASED_NUMBER, code=None, permanent=True, now=now\n        )", "message.status = OutboxStatus.cancelled", (CHECKIN + "test_a_checkin_call_queued_before_the_number_was_erased_fails_for_good_without_a_call",)),  # noqa: E501
    # c. A claim taken over after the stale window: the old worker sends and records nothing.
    M("c: gate ignores the claim token", "welfare/delivery.py", "    if message.claim_token != claim.token:\n        return None\n", "", (D + "test_a_claim_taken_over_after_the_stale_window_no_longer_opens_the_gate",)),  # noqa: E501
    M("c: late acceptance recorded", "welfare/delivery.py", "ours = {message_id for message_id, token in current.items() if token == tokens[message_id]}", "ours = set(current)", (D + "test_a_late_answer_to_a_send_another_worker_took_over_changes_nothing",)),  # noqa: E501
    M("c: late failure recorded", "welfare/delivery.py", "    if message.claim_token != token:\n        return None\n    return message, incident", "    return message, incident", (D + "test_a_late_answer_to_a_send_another_worker_took_over_changes_nothing",)),  # noqa: E501
    # d. A lapsed consent scope stops visit schedules and the responder's resident view.
    M("d: withdrawn consent still schedules visits", "welfare/visits/scheduler.py", "col(Consent.resident_id).in_(resident_ids), col(Consent.withdrawn_at).is_(None)", "col(Consent.resident_id).in_(resident_ids)", ("tests/welfare/test_visits.py::test_withdrawing_only_the_welfare_visits_scope_stops_the_schedule_at_the_next_generation",)),  # noqa: E501
    M("d: schedule without consent not stopped", "welfare/visits/scheduler.py", "if schedule.resident_id not in consenting:", "if False:", ("tests/welfare/test_visits.py::test_withdrawing_only_the_welfare_visits_scope_stops_the_schedule_at_the_next_generation",)),  # noqa: E501
    M("d: responder view without the scope", "welfare/incidents/responders.py", '    if ConsentScope.lost_person_response not in scopes:\n        raise NotFound("resident")\n', "", ("tests/api/test_break_glass.py::test_withdrawing_the_lost_person_scope_ends_the_responders_view_of_an_open_incident",)),  # noqa: E501
    # One running incident per resident, whatever the race (issue 14).
    M("race: no unique index for running incidents", "alembic/versions/0016_one_running_incident.py", '["resident_id"],\n        unique=True,', '["resident_id"],\n        unique=False,', (RACES + "test_the_database_refuses_a_second_running_incident",)),  # noqa: E501
    M("race: the loser of a race fails", "welfare/incidents/service.py", "        if insert_unless_conflict(session, incident):", "        session.add(incident)\n        session.flush()\n        if True:", (RACES + "test_a_report_that_lost_the_race_takes_the_running_incident", RACES + "test_a_retry_that_lost_the_race_takes_its_own_incident")),  # noqa: E501
    M("race: a lost retry is not looked up again", "welfare/incidents/service.py", "        earlier = _same_request(session, actor, data)\n        if earlier is not None:\n            return Opened(earlier, False)\n    else:", "    else:", (RACES + "test_a_retry_that_lost_the_race_takes_its_own_incident",)),  # noqa: E501
    M("close: any guard may close", "welfare/incidents/service.py", "    return incident_photos.is_guard_on_it(session, actor, incident)", "    return True", (ACTIONS + "test_a_guard_who_neither_reported_nor_claimed_cannot_close_the_incident", "tests/api/test_role_matrix.py::test_role_matrix")),  # noqa: E501
    M("notes: guards read staff notes", "welfare/incidents/timeline.py", 'if event_type != "note" or "text" not in detail or actor.can(Permission.registry_read):', "if True:", (ACTIONS + "test_staff_notes_are_for_staff_unless_meant_for_everyone",)),  # noqa: E501
    M("audit: resolving leaves no entry", "welfare/incidents/service.py", '_audit(session, actor, incident, "incident.resolve", outcome=data.outcome.value)', "None", (ACTIONS + "test_every_change_of_an_incidents_state_is_in_the_audit",)),  # noqa: E501
    M("possibly sent: a stop cancels rows in flight", "welfare/incidents/service.py", ".values(status=OutboxStatus.unknown, updated_at=now)", ".values(status=OutboxStatus.cancelled, updated_at=now)", (D + "test_a_row_left_sending_is_possibly_sent_once_the_incident_is_confirmed",)),  # noqa: E501
    M("password change not throttled", "welfare/users/service.py", "    _check_throttle(session, settings, user.username, client_addr, _PASSWORD_THROTTLED)\n", "", ("tests/api/test_auth.py::test_wrong_current_passwords_are_throttled_with_the_sign_in_limits",)),  # noqa: E501
    M("anchor: an unchanged head anchored again", "welfare/audit/anchor.py", "    if newest is None or newest == anchored:\n        return None", "    if newest is None:\n        return None", ("tests/welfare/test_audit_anchor.py::test_the_worker_job_anchors_every_minute_while_entries_come_and_not_when_idle",)),  # noqa: E501
    # Every 5xx found from outside answers 4xx: one rule each for timezones, instants, days,
    # form values, stream ids and webhook bodies.
    M("times: any text is a timezone", "welfare/times.py", "    if value not in _known_timezones():", "    if False:", (NO5XX + "test_a_timezone_that_is_not_an_iana_name_is_refused_on_create_and_patch",)),  # noqa: E501
    M("times: a naive time is an instant", "welfare/times.py", "Instant = Annotated[AwareDatetime, AfterValidator(check_instant)]", "Instant = dt.datetime", (NO5XX + "test_a_time_without_offset_or_outside_the_years_is_a_422_naming_the_parameter",)),  # noqa: E501
    M("times: an instant of any year", "welfare/times.py", "    check_year(value.date())\n    return value.astimezone(dt.UTC)", "    return value.astimezone(dt.UTC)", (NO5XX + "test_a_time_without_offset_or_outside_the_years_is_a_422_naming_the_parameter",)),  # noqa: E501
    M("times: a typed day of any year", "welfare/times.py", "        raise ValueError(\"give a date like 2026-11-01\") from None\n    return check_year(day)", "        raise ValueError(\"give a date like 2026-11-01\") from None\n    return day", (NO5XX + "test_the_visit_calendar_refuses_a_day_outside_the_years_with_its_page", NO5XX + "test_the_audit_page_refuses_a_day_outside_the_years_in_words")),  # noqa: E501
    M("forms: a refused model value escapes the form", "api/pages/forms.py", "    except ValidationError as exc:", "    except KeyError as exc:", (NO5XX + "test_a_schedule_form_value_the_model_refuses_is_shown_on_the_form",)),  # noqa: E501
    M("stream: event ids past 64 bits", "api/routes/incidents.py", "last_event_id: Annotated[int | None, Header(ge=0, le=MAX_EVENT_ID)] = None,", "last_event_id: Annotated[int | None, Header(ge=0)] = None,", (NO5XX + "test_the_event_stream_refuses_an_id_past_64_bits_before_it_starts",)),  # noqa: E501
    M("limits: the same text again goes out", "welfare/outbox/limits.py", "                table.c.sent_at <= now - limits.identical_within,", "                True,", (LIMITS + "test_the_same_text_to_one_number_goes_once_a_day_and_the_repeat_is_held_in_the_audit[sqlite]",)),  # noqa: E501
    M("limits: an incident's messages use up the allowance", "welfare/outbox/limits.py", "    if limits.per_window and message.incident_id is None:", "    if limits.per_window:", (LIMITS + "test_an_incidents_messages_are_never_slowed_and_use_no_allowance[sqlite]",)),  # noqa: E501
    M("limits: a failed text still holds back the next", "welfare/delivery.py", "        limits.forget(session, message.id)  # it never arrived: the same text may go again", "        pass", (LIMITS + "test_a_text_that_never_arrived_does_not_hold_back_the_next[sqlite]",)),  # noqa: E501
    M("webhooks: any body is read as a form", "api/routes/webhooks.py", "    if media_type != FORM_MEDIA_TYPE:", "    if False:", (NO5XX + "test_a_webhook_that_is_not_a_url_encoded_form_is_a_415",)),  # noqa: E501
    # A visit rule expanded from a start moved near the range gives the same occurrences (19).
    M("recurrence: a month-end start moved by months", "welfare/visits/recurrence.py", "elif parsed._freq == MONTHLY and dtstart.day <= 28:", "elif parsed._freq == MONTHLY:", ("tests/welfare/test_recurrence.py",)),  # noqa: E501
    M("recurrence: a COUNT rule moved", "welfare/visits/recurrence.py", "if parsed._count is not None or near <= dtstart:", "if near <= dtstart:", ("tests/welfare/test_recurrence.py",)),  # noqa: E501
    # The calendar's planned occurrences past the rolling window (19).
    M("calendar: planned for a withdrawn consent", "welfare/visits/calendar_view.py", "                col(Consent.withdrawn_at).is_(None),\n                scopes.c.value", "                scopes.c.value", ("tests/welfare/test_visit_calendar.py",)),  # noqa: E501
    M("calendar: planned under another status", "welfare/visits/calendar_view.py", "if statuses and VisitStatus.scheduled not in statuses:", "if False:", ("tests/welfare/test_visit_calendar.py",)),  # noqa: E501
]
# fmt: on

EXCLUDE = {".venv", ".git", "__pycache__", ".pytest_cache", ".ruff_cache", ".mypy_cache"}


def scratch_copy() -> Path:
    target = Path(tempfile.mkdtemp(prefix="welfare-mutation-")) / "repo"
    shutil.copytree(ROOT, target, ignore=lambda _dir, names: [n for n in names if n in EXCLUDE])
    return target


def environment(scratch: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WELFARE_")}
    env["PYTHONPATH"] = str(scratch)
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # cached bytecode: see `write_with_mtime`
    return env


def write_with_mtime(path: Path, text: str, mtime: float) -> None:
    """Write `text` and give the file `mtime`. Python trusts a cached .pyc whose recorded source
    mtime (whole seconds) and size match, so a mutation written and undone within one second
    at the same size could run the wrong code. Each mutation gets an mtime of its own and the
    original gets its own back: the .pyc of each is only ever used for that same text (and the
    original's is compiled once, by the baseline run, instead of on every run)."""
    path.write_text(text)
    os.utime(path, (mtime, mtime))


def check_imports(scratch: Path, env: dict[str, str]) -> None:
    """The scratch copy, not the editable install, must be what the tests import."""
    probe = (
        "import api, notifications, tests, welfare\n"
        "for m in (api, notifications, tests, welfare): print(m.__file__)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=scratch, env=env, capture_output=True, text=True
    )
    files = out.stdout.split()
    if out.returncode or len(files) != 4 or not all(f.startswith(str(scratch)) for f in files):
        sys.exit(f"the scratch copy is not what gets imported:\n{out.stdout}{out.stderr}")


def run_tests(scratch: Path, env: dict[str, str], tests: tuple[str, ...]) -> tuple[bool, str]:
    command = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests]
    out = subprocess.run(command, cwd=scratch, env=env, capture_output=True, text=True)
    lines = (out.stdout + out.stderr).strip().splitlines()
    return out.returncode == 0, lines[-1] if lines else ""


def main(words: list[str]) -> int:
    started = time.monotonic()
    chosen = [m for m in MUTATIONS if not words or any(w in m.name for w in words)]
    scratch = scratch_copy()
    env = environment(scratch)
    try:
        check_imports(scratch, env)
        every_test = tuple(dict.fromkeys(t for m in chosen for t in m.tests))
        passed, summary = run_tests(scratch, env, every_test)
        if not passed:
            print(f"the named tests fail without any mutation: {summary}")
            return 1
        print(f"baseline: {summary}")
        results: dict[str, int] = {"killed": 0, "survived": 0, "stale": 0}
        for index, mutation in enumerate(chosen, start=1):
            path = scratch / mutation.file
            original, original_mtime = path.read_text(), path.stat().st_mtime
            if original.count(mutation.snippet) != 1:
                verdict = "stale"
                detail = f"snippet found {original.count(mutation.snippet)} times"
            else:
                mutated = original.replace(mutation.snippet, mutation.replacement)
                write_with_mtime(path, mutated, original_mtime + 1000 * index)
                try:
                    passed, detail = run_tests(scratch, env, mutation.tests)
                finally:
                    write_with_mtime(path, original, original_mtime)
                verdict = "survived" if passed else "killed"
            results[verdict] += 1
            print(f"{verdict:8}  {mutation.name}  ({mutation.file}; {detail})", flush=True)
    finally:
        shutil.rmtree(scratch.parent, ignore_errors=True)
    elapsed = time.monotonic() - started
    print(
        f"mutations: {len(chosen)}, killed {results['killed']}, survived {results['survived']}, "
        f"stale {results['stale']} in {elapsed:.0f} s"
    )
    return 1 if results["survived"] or results["stale"] else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
