"""The workflow samples (07-11) do what their READMEs and ``demo.http`` files promise.

Each sample runs once per class, unchanged, on the local host with the test Azurite and a fake OpenAI server
of its own (``running`` from ``test_samples``): the real OpenAI client crosses HTTP, so the tests read what
every agent executor sent the model. The static checks of ``test_samples.py`` cover these folders too.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from datetime import date, timedelta
from typing import Any

import pytest
from azure.storage.blob import BlobServiceClient
from conftest import AzuriteInstance
from test_samples import Sample, key, last_user_text, module_constant, running, system_text

from durableagent.testing import Reply

SETTLED = ("completed", "failed", "terminated")


def start(sample: Sample, workflow: str, body: dict[str, Any]) -> dict[str, Any]:
    code, started = sample.call("POST", f"/workflows/{workflow}/runs", body)
    assert code == 202, started
    return dict(started)


def settle(sample: Sample, status_uri: str, until: Callable[[dict[str, Any]], bool] | None = None) -> dict[str, Any]:
    """Poll a run's status until it is settled (or ``until(status)``)."""
    done = until or (lambda s: s["state"] in SETTLED)
    status: dict[str, Any] = sample.eventually("GET", status_uri, lambda c, b: c == 200 and done(b))
    return status


def waiting(sample: Sample, status_uri: str, request_id: str | None = None) -> dict[str, Any]:
    """Poll until the run waits for input (for ``request_id`` when given) or is settled."""

    def asks(status: dict[str, Any]) -> bool:
        pending = [r["requestId"] for r in status["pendingRequests"]]
        return status["state"] == "waiting_for_input" and (request_id is None or request_id in pending)

    return settle(sample, status_uri, lambda s: s["state"] in SETTLED or asks(s))


def invoked(sample: Sample, events_uri: str) -> list[str]:
    """The executors a run invoked, in order (from its events)."""
    code, body = sample.call("GET", events_uri)
    assert code == 200, body
    return [e["executorId"] for e in body["events"] if e["type"] == "executor_invoked"]


# 07: a sequential workflow ----------------------------------------------------------------------------


@pytest.mark.e2e
class TestSequentialWorkflow:
    NAME = "07_sequential_workflow"
    WORKFLOW = "ProductCopy"

    @pytest.fixture(scope="class")
    def sample(self, azurite: AzuriteInstance, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sample]:
        with running(self.NAME, azurite, tmp_path_factory) as sample:
            yield sample

    def test_health_lists_the_workflow(self, sample: Sample) -> None:
        code, body = sample.call("GET", "/health")
        assert code == 200, body
        assert body["workflows"] == [{"name": self.WORKFLOW, "type": "graph"}] and body["agents"] == []

    def test_the_brief_goes_through_every_step_in_order(self, sample: Sample) -> None:
        product = key("drill")
        draft = f"The {product} charges in 15 minutes, so your battery is ready before your coffee is."
        final = f"The {product} charges in 15 minutes: ready before your coffee."
        sample.model.script(Reply.text(draft), Reply.text(final))
        brief = {"product": product, "features": ["15-minute charge", "1.4 kg"], "audience": "carpenters"}
        code, status = sample.call(
            "POST", f"/workflows/{self.WORKFLOW}/runs", {"input": brief, "waitForCompletion": True}
        )
        assert code == 200, status
        assert status["state"] == "completed", status
        assert status["outputs"] == [{"product": product, "description": final, "words": 10, "draft": draft}]

        # The Writer got the prepared prompt under its own instructions; the Editor got only the draft.
        [to_writer] = sample.model.asked(f"Product: {product}\n")
        assert system_text(to_writer) == module_constant(self.NAME, "WRITER_INSTRUCTIONS")
        assert last_user_text(to_writer) == (
            f"Product: {product}\nAudience: carpenters\nFeatures:\n- 15-minute charge\n- 1.4 kg\n\n"
            "Write the product description."
        )
        [to_editor] = sample.model.asked(draft)
        assert system_text(to_editor) == module_constant(self.NAME, "EDITOR_INSTRUCTIONS")
        assert [m["role"] for m in to_editor["messages"]] == ["system", "user"]
        assert last_user_text(to_editor) == f"Edit this product description:\n\n{draft}"

        # One superstep per step, a checkpoint after each (plus the one the run starts from).
        assert invoked(sample, status["eventsUri"]) == ["prepare", "writer", "handoff", "editor", "publish"]
        assert [c["iteration"] for c in status["checkpoints"]] == [0, 1, 2, 3, 4, 5]

    def test_input_that_does_not_fit_is_refused(self, sample: Sample) -> None:
        code, body = sample.call("POST", f"/workflows/{self.WORKFLOW}/runs", {"input": "a drill"})
        assert code == 400 and body["error"]["code"] == "invalid_input", body
        code, body = sample.call("POST", f"/workflows/{self.WORKFLOW}/runs", {"input": {"product": "x", "price": 3}})
        assert code == 400 and body["error"]["code"] == "invalid_input", body

    def test_an_executor_error_fails_the_run(self, sample: Sample) -> None:
        started = start(sample, self.WORKFLOW, {"input": {"product": "  "}})
        status = settle(sample, started["statusUri"])
        assert status["state"] == "failed" and status["outputs"] == []
        # Callers get a code and the executor, never the exception's text (the log has its type).
        assert status["error"] == {"code": "executor_failed", "message": "Executor 'prepare' failed."}
        assert invoked(sample, started["eventsUri"]) == ["prepare"]


# 08: fan-out to parallel reviewers, fan-in to one report ----------------------------------------------


@pytest.mark.e2e
class TestParallelWorkflow:
    NAME = "08_parallel_workflow"
    WORKFLOW = "AnnouncementReview"

    @pytest.fixture(scope="class")
    def sample(self, azurite: AzuriteInstance, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sample]:
        with running(self.NAME, azurite, tmp_path_factory) as sample:
            yield sample

    @staticmethod
    def instructions() -> dict[str, str]:
        template: str = module_constant(TestParallelWorkflow.NAME, "INSTRUCTIONS")
        focus: dict[str, str] = module_constant(TestParallelWorkflow.NAME, "REVIEWERS")
        return {name: template.format(focus=f) for name, f in focus.items()}

    @classmethod
    def answer_by_reviewer(cls, sample: Sample, answers: dict[str, Reply]) -> None:
        """Reviewers run concurrently, so answer each by its instructions rather than by arrival order."""
        by_instructions = {text: answers[name] for name, text in cls.instructions().items()}
        sample.model.server.set_responder(lambda body: by_instructions[system_text(body)])

    def test_reviewers_run_in_parallel_and_the_report_collects_them(self, sample: Sample) -> None:
        text = f"From 1 March, every cordless drill ships free. ({key('news')})"
        answers = {
            "legal": Reply.text("Say which orders qualify.\nVERDICT: REVISE"),
            "brand": Reply.text("Friendly and plain.\nVERDICT: APPROVE"),
            "clarity": Reply.text("Clear enough.\nverdict: approve"),
        }
        try:
            self.answer_by_reviewer(sample, answers)
            started = start(sample, self.WORKFLOW, {"input": text})
            status = settle(sample, started["statusUri"])
        finally:
            sample.model.server.set_responder(None)
        assert status["state"] == "completed", status
        assert status["outputs"] == [
            {
                "text": text,
                "approved": False,
                "revise": ["legal"],
                "reviews": [
                    {"reviewer": "legal", "verdict": "revise", "notes": "Say which orders qualify."},
                    {"reviewer": "brand", "verdict": "approve", "notes": "Friendly and plain."},
                    {"reviewer": "clarity", "verdict": "approve", "notes": "Clear enough."},
                ],
            }
        ]
        # Each reviewer got the same text, once, under its own instructions.
        asked = sample.model.asked(text)
        assert len(asked) == 3 and all(last_user_text(r) == text for r in asked)
        assert sorted(system_text(r) for r in asked) == sorted(self.instructions().values())
        # Fan-out and fan-in are supersteps: dispatch, then all three reviewers together, then collect once.
        executors = invoked(sample, started["eventsUri"])
        assert executors[0] == "dispatch" and sorted(executors[1:4]) == ["brand", "clarity", "legal"]
        assert executors[4:] == ["collect"]
        assert [c["iteration"] for c in status["checkpoints"]] == [0, 1, 2, 3]

    def test_approved_only_when_every_reviewer_approves(self, sample: Sample) -> None:
        def report(answers: dict[str, Reply]) -> dict[str, Any]:
            try:
                self.answer_by_reviewer(sample, answers)
                body = {"input": f"New opening hours. ({key('hours')})"}
                code, status = sample.call("POST", f"/workflows/{self.WORKFLOW}/runs?wait=true", body)
            finally:
                sample.model.server.set_responder(None)
            assert code == 200 and status["state"] == "completed", status
            [output] = status["outputs"]
            return dict(output)

        approve = Reply.text("Looks fine.\nVERDICT: APPROVE")
        output = report({"legal": approve, "brand": approve, "clarity": approve})
        assert output["approved"] is True and output["revise"] == []
        # A review without a verdict line counts as "revise".
        output = report({"legal": approve, "brand": approve, "clarity": Reply.text("Which days?")})
        assert output["approved"] is False and output["revise"] == ["clarity"]
        assert output["reviews"][2] == {"reviewer": "clarity", "verdict": "revise", "notes": "Which days?"}

    def test_a_failing_reviewer_fails_the_run(self, sample: Sample) -> None:
        text = f"Price update. ({key('prices')})"
        answers = {name: Reply.text("Fine.\nVERDICT: APPROVE") for name in ("legal", "clarity")}
        answers["brand"] = Reply.error(400)
        try:
            self.answer_by_reviewer(sample, answers)
            started = start(sample, self.WORKFLOW, {"input": text})
            status = settle(sample, started["statusUri"])
        finally:
            sample.model.server.set_responder(None)
        assert status["state"] == "failed" and status["outputs"] == [], status
        assert status["error"]["code"] == "executor_failed", status["error"]
        assert "HTTP 400" in status["error"]["message"] and "Error code" not in status["error"]["message"]
        code, body = sample.call("GET", started["eventsUri"])
        assert code == 200 and [e["executorId"] for e in body["events"] if e["type"] == "executor_failed"] == ["brand"]
        code, body = sample.call("POST", f"/workflows/{self.WORKFLOW}/runs", {"input": "   "})
        assert code == 202, body
        assert settle(sample, body["statusUri"])["error"]["code"] == "executor_failed"


# 09: structured output picks the route -----------------------------------------------------------------


@pytest.mark.e2e
class TestConditionalRouting:
    NAME = "09_conditional_routing"
    WORKFLOW = "TicketRouting"

    @pytest.fixture(scope="class")
    def sample(self, azurite: AzuriteInstance, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sample]:
        with running(self.NAME, azurite, tmp_path_factory) as sample:
            yield sample

    def route(self, sample: Sample, ticket: str, triage: dict[str, Any]) -> dict[str, Any]:
        sample.model.script(Reply.json(triage))
        code, status = sample.call("POST", f"/workflows/{self.WORKFLOW}/runs?wait=true", {"input": ticket})
        assert code == 200 and status["state"] == "completed", status
        [decision] = status["outputs"]
        assert invoked(sample, status["eventsUri"]) == ["classify", decision["desk"]]  # one desk, nothing else
        return dict(decision)

    @pytest.mark.parametrize(
        ("category", "urgent", "desk"),
        [
            ("billing", False, "billing"),
            ("shipping", False, "shipping"),
            ("technical", False, "technical"),
            ("other", False, "general"),
            ("shipping", True, "escalation"),
        ],
    )
    def test_the_parsed_answer_picks_the_desk(self, sample: Sample, category: str, urgent: bool, desk: str) -> None:
        ticket = f"Ticket {key('t')}: something about my order."
        triage = {"category": category, "urgent": urgent, "summary": "The customer has a problem."}
        decision = self.route(sample, ticket, triage)
        desks = module_constant(self.NAME, "DESKS")
        assert decision == {"desk": desk, **desks[desk], **triage, "ticket": ticket}

    def test_the_model_is_asked_for_the_schema(self, sample: Sample) -> None:
        ticket = f"Ticket {key('t')}: I was charged twice for order 1002."
        self.route(sample, ticket, {"category": "billing", "urgent": True, "summary": "Charged twice."})
        [request] = sample.model.asked(ticket)
        assert system_text(request) == module_constant(self.NAME, "CLASSIFIER_INSTRUCTIONS")
        fmt = request["response_format"]
        assert fmt["type"] == "json_schema" and fmt["json_schema"]["name"] == "TicketTriage"
        schema = fmt["json_schema"]["schema"]
        assert set(schema["required"]) == {"category", "urgent", "summary"}
        assert schema["properties"]["category"]["enum"] == ["billing", "shipping", "technical", "other"]

    def test_an_answer_that_does_not_fit_the_schema_fails_the_run(self, sample: Sample) -> None:
        sample.model.script(Reply.json({"category": "gardening", "urgent": False, "summary": "?"}))
        started = start(sample, self.WORKFLOW, {"input": f"Ticket {key('t')}: my hedge trimmer is blunt."})
        status = settle(sample, started["statusUri"])
        assert status["state"] == "failed" and status["outputs"] == [], status
        # The model's answer is not shown back (it may quote anything the model was told).
        # (It fails in the switch-case condition, between executors: a workflow failure, not an executor's.)
        assert status["error"] == {"code": "workflow_failed", "message": "The workflow run failed."}, status
        code, body = sample.call("POST", f"/workflows/{self.WORKFLOW}/runs", {"input": {"ticket": 1}})
        assert code == 400 and body["error"]["code"] == "invalid_input", body


# 10: a person approves over HTTP, or the timeout rejects --------------------------------------------------


@pytest.mark.e2e
class TestHumanApproval:
    NAME = "10_human_approval"
    WORKFLOW = "AnnouncementApproval"

    @pytest.fixture(scope="class")
    def sample(self, azurite: AzuriteInstance, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sample]:
        with running(self.NAME, azurite, tmp_path_factory) as sample:  # the default timeout: one day
            yield sample

    @pytest.fixture(scope="class")
    def impatient(self, azurite: AzuriteInstance, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sample]:
        with running(self.NAME, azurite, tmp_path_factory, APPROVAL_TIMEOUT_SECONDS="2") as sample:
            yield sample

    def test_feedback_then_approval_publishes_the_revision(self, sample: Sample) -> None:
        topic = f"Announce free shipping on drills from 1 March ({key('news')})."
        first, second = "Free shipping on every drill from 1 March.", "From 1 March, drills ship free."
        sample.model.script(Reply.text(first), Reply.text(second))
        code, status = sample.call(
            "POST", f"/workflows/{self.WORKFLOW}/runs", {"input": topic, "waitForCompletion": True}
        )
        # Waiting for completion comes back once the run needs input, with the request to answer.
        assert code == 200 and status["state"] == "waiting_for_input", status
        [request] = status["pendingRequests"]
        assert request == {
            "requestId": "review-1",
            "sourceExecutor": "review",
            "requestType": "DraftReview",
            "responseType": "Decision",
            "data": {"draft": first, "round": 1},
            "respondUri": status["respondUri"].replace("{requestId}", "review-1"),
        }
        # An answer that is not a Decision is refused, and the run keeps waiting.
        for wrong in ("yes", {"approved": "yes"}, {"approved": True, "mood": "happy"}):
            code, body = sample.call("POST", request["respondUri"], wrong)
            assert code == 400 and body["error"]["code"] == "invalid_response", (wrong, body)
        code, body = sample.call("GET", status["statusUri"])
        assert body["state"] == "waiting_for_input" and body["pendingRequests"] == [request], body
        feedback = "Say which drills and add the end date."
        code, body = sample.call("POST", request["respondUri"], {"approved": False, "feedback": feedback})
        assert code == 202 and body["status"] == "accepted", body

        status = waiting(sample, status["statusUri"], "review-2")
        assert status["state"] == "waiting_for_input", status
        [request] = status["pendingRequests"]
        assert request["requestId"] == "review-2" and request["data"] == {"draft": second, "round": 2}
        # The Writer revised in the same conversation: the topic, its first draft, then the feedback.
        [revision] = sample.model.asked(feedback)
        assert [(m["role"], m["content"]) for m in revision["messages"][1:]] == [
            ("user", topic),
            ("assistant", first),
            ("user", f"Revise your announcement. Reviewer feedback: {feedback}"),
        ]

        code, body = sample.call("POST", request["respondUri"], {"approved": True, "reviewer": "dana"})
        assert code == 202, body
        status = settle(sample, status["statusUri"])
        assert status["state"] == "completed", status
        assert status["outputs"] == [
            {"status": "published", "text": second, "rounds": 2, "reviewer": "dana", "feedback": ""}
        ]
        assert invoked(sample, status["eventsUri"]) == ["writer", "review", "review", "writer", "review", "review"]
        code, body = sample.call("POST", request["respondUri"], {"approved": False})
        assert code == 409 and body["error"]["code"] == "run_finished", body

    def test_a_rejection_without_feedback_ends_the_run(self, sample: Sample) -> None:
        started = start(sample, self.WORKFLOW, {"input": f"Announce new opening hours ({key('hours')})."})
        [request] = waiting(sample, started["statusUri"])["pendingRequests"]
        code, _ = sample.call("POST", request["respondUri"], {"approved": False, "reviewer": "sam"})
        assert code == 202
        # The same answer again is accepted (idempotent) while the run lasts; a different one conflicts.
        code, body = sample.call("POST", request["respondUri"], {"approved": False, "reviewer": "sam"})
        assert code == 202 or body["error"]["code"] == "run_finished", body
        code, body = sample.call("POST", request["respondUri"], {"approved": True, "reviewer": "sam"})
        assert code == 409 and body["error"]["code"] in ("request_already_answered", "run_finished"), body
        status = settle(sample, started["statusUri"])
        [output] = status["outputs"]
        assert output["status"] == "rejected" and output["reviewer"] == "sam" and output["rounds"] == 1

    def test_nobody_answers_and_the_timeout_rejects(self, impatient: Sample) -> None:
        started = start(impatient, self.WORKFLOW, {"input": f"Announce a price change ({key('late')})."})
        status = waiting(impatient, started["statusUri"])
        asked_at = time.monotonic()
        assert status["state"] == "waiting_for_input", status
        draft = status["pendingRequests"][0]["data"]["draft"]
        status = settle(impatient, started["statusUri"])
        assert status["state"] == "completed", status
        assert time.monotonic() - asked_at > 1.0  # APPROVAL_TIMEOUT_SECONDS=2, counted from the request
        assert status["outputs"] == [
            {"status": "rejected", "text": draft, "rounds": 1, "reviewer": "timeout", "feedback": ""}
        ]
        code, body = impatient.call("POST", status["respondUri"].replace("{requestId}", "review-1"), {"approved": True})
        assert code == 409 and body["error"]["code"] == "run_finished", body


# 11: checkpoints, forks and an idempotent side effect --------------------------------------------------


@pytest.mark.e2e
class TestCheckpointResume:
    NAME = "11_checkpoint_resume"
    WORKFLOW = "SalesDigest"

    @pytest.fixture(scope="class")
    def sample(self, azurite: AzuriteInstance, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sample]:
        with running(self.NAME, azurite, tmp_path_factory) as sample:
            yield sample

    @staticmethod
    def day() -> dict[str, Any]:
        """A day of sales with a date of its own (the date names the delivered blobs)."""
        n = int(key("d").split("-")[1], 16) % 30000
        on = date(2000, 1, 1) + timedelta(days=n)
        sales = [
            {"sku": "DRL-18V", "quantity": 2, "unit_price": 89},
            {"sku": "SAW-7", "quantity": 1, "unit_price": 129.5},
            {"sku": "DRL-18V", "quantity": 1, "unit_price": 89},
        ]
        return {"date": on.isoformat(), "sales": sales}

    @staticmethod
    def outbox(sample: Sample, on: str) -> list[dict[str, Any]]:
        container = BlobServiceClient.from_connection_string(sample.connection).get_container_client(
            module_constant(TestCheckpointResume.NAME, "OUTBOX_CONTAINER")
        )
        blobs = container.list_blobs(name_starts_with=f"{on}/")
        return [json.loads(container.download_blob(b.name).readall()) for b in blobs]

    def run_day(self, sample: Sample, digest: str) -> tuple[dict[str, Any], dict[str, Any]]:
        day = self.day()
        sample.model.script(Reply.text(digest))
        started = start(sample, self.WORKFLOW, {"input": day})
        status = settle(sample, started["statusUri"])
        assert status["state"] == "completed", status
        return day, status

    def test_a_run_lists_its_checkpoints_and_each_can_be_read(self, sample: Sample) -> None:
        day, status = self.run_day(sample, "Four units sold; the 18 V drill led.")
        figures = {"date": day["date"], "orders": 3, "units": 4, "revenue": 396.5, "topSku": "DRL-18V"}
        [output] = status["outputs"]
        assert output["figures"] == figures and output["alreadySent"] is False
        assert output["digest"] == "Four units sold; the 18 V drill led."
        [request] = sample.model.asked(f"Sales on {day['date']}:")
        assert last_user_text(request) == (
            f"Sales on {day['date']}: 3 orders, 4 units, revenue 396.50 EUR, best seller DRL-18V. Write the digest."
        )
        assert self.outbox(sample, day["date"]) == [
            {"subject": f"Sales digest {day['date']}", "digest": output["digest"], "figures": figures}
        ]

        checkpoints = status["checkpoints"]
        assert [c["iteration"] for c in checkpoints] == [0, 1, 2, 3]
        assert [c["previousCheckpointId"] for c in checkpoints[1:]] == [c["checkpointId"] for c in checkpoints[:-1]]
        read = []
        for checkpoint in checkpoints:
            code, body = sample.call("GET", f"/digests/checkpoints/{checkpoint['checkpointId']}")
            assert code == 200, body
            assert body["iteration"] == checkpoint["iteration"]
            read.append((body["messagesFrom"], body["state"]))
        assert read == [
            (["internal:tally"], {}),
            (["tally"], {"figures": figures}),
            (["summarize"], {"figures": figures}),
            ([], {"figures": figures}),
        ]
        code, body = sample.call("GET", "/digests/checkpoints/no-such-checkpoint")
        assert code == 404 and body["error"]["code"] == "checkpoint_not_found"

    def test_a_fork_reruns_only_what_follows_its_checkpoint(self, sample: Sample) -> None:
        day, first = self.run_day(sample, "First digest.")
        after_tally, after_summary = first["checkpoints"][1]["checkpointId"], first["checkpoints"][2]["checkpointId"]
        asked_before = len(sample.model.server.requests)

        # From the checkpoint after the Summarizer: only deliver runs, with the same input, so nothing is re-sent.
        forked = start(sample, self.WORKFLOW, {"checkpointId": after_summary})
        status = settle(sample, forked["statusUri"])
        assert status["state"] == "completed", status
        [output] = status["outputs"]
        assert output == {**first["outputs"][0], "alreadySent": True}
        assert invoked(sample, forked["eventsUri"]) == ["deliver"]
        assert len(sample.model.server.requests) == asked_before  # the model was not asked again
        assert status["checkpoints"][0]["previousCheckpointId"] == after_summary  # the lineage continues

        # From the checkpoint after tally: the Summarizer writes a new digest, which is delivered.
        sample.model.script(Reply.text("Second digest."))
        forked = start(sample, self.WORKFLOW, {"checkpointId": after_tally})
        status = settle(sample, forked["statusUri"])
        [output] = status["outputs"]
        assert output["digest"] == "Second digest." and output["alreadySent"] is False
        assert output["figures"] == first["outputs"][0]["figures"]  # from the checkpoint's shared state
        assert output["deliveryKey"] != first["outputs"][0]["deliveryKey"]
        assert invoked(sample, forked["eventsUri"]) == ["summarize", "deliver"]  # tally is not run again
        assert sorted(m["digest"] for m in self.outbox(sample, day["date"])) == ["First digest.", "Second digest."]
        # The original run is unchanged.
        code, body = sample.call("GET", first["statusUri"])
        assert code == 200 and body["outputs"] == first["outputs"]

    def test_rerun_from_python(self, sample: Sample) -> None:
        _, first = self.run_day(sample, "Digest one.")
        sample.model.script(Reply.text("Digest two."))
        code, body = sample.call("POST", f"/digests/runs/{first['runId']}/rerun", {"after": "tally"})
        assert code == 202, body
        assert body["checkpointId"] == first["checkpoints"][1]["checkpointId"]
        status = settle(sample, body["statusUri"])
        assert status["runId"] == body["runId"] and status["outputs"][0]["digest"] == "Digest two."
        assert invoked(sample, status["eventsUri"]) == ["summarize", "deliver"]

        code, body = sample.call("POST", f"/digests/runs/{first['runId']}/rerun", {"after": "deliver"})
        assert code == 404 and body["error"]["code"] == "checkpoint_not_found", body
        code, body = sample.call("POST", f"/digests/runs/{first['runId']}/rerun", {"after": "mail"})
        assert code == 400 and body["error"]["code"] == "invalid_request", body
        code, body = sample.call("POST", "/digests/runs/no-such-run/rerun", {"after": "tally"})
        assert code == 404 and body["error"]["code"] == "run_not_found", body

    def test_bad_starts(self, sample: Sample) -> None:
        code, body = sample.call("POST", f"/workflows/{self.WORKFLOW}/runs", {"checkpointId": "no-such-checkpoint"})
        assert code == 404 and body["error"]["code"] == "checkpoint_not_found", body
        started = start(sample, self.WORKFLOW, {"input": {"date": "March 2nd", "sales": []}})
        status = settle(sample, started["statusUri"])
        assert status["state"] == "failed" and status["error"] == {
            "code": "executor_failed",
            "message": "Executor 'tally' failed.",
        }, status
        assert self.outbox(sample, "March 2nd") == []
