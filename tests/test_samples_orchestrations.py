"""Samples 12-14 (agents inside durable orchestrations) do what their READMEs and ``demo.http`` promise.

Each sample runs unchanged on the local host with the test Azurite and a fake OpenAI server of its own
(the harness of ``test_samples.py``), so the tests read exactly what every agent was sent, and in which
order: the chain hands each agent's text to the next, the panel's experts are asked at once, and the
reviewed agent revises in the conversation that holds its earlier draft.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from conftest import AzuriteInstance
from test_samples import (
    Sample,
    history,
    key,
    last_user_text,
    messages_of,
    module_constant,
    running,
    system_text,
    text_of,
)

from durableagent.testing import Reply


def start(sample: Sample, path: str, body: Any) -> dict[str, Any]:
    """Start an orchestration through the sample's own route; returns the check-status payload."""
    code, started = sample.call("POST", path, body)
    assert code == 202, started
    assert set(started) >= {"id", "statusQueryGetUri", "sendEventPostUri", "terminatePostUri"}
    return dict(started)


def finished(sample: Sample, started: dict[str, Any], timeout: float = 30.0) -> dict[str, Any]:
    """The instance's status once it is terminal (the status URI answers 200 only then)."""
    status: dict[str, Any] = sample.eventually("GET", started["statusQueryGetUri"], lambda c, b: c == 200, timeout)
    return status


def conversation(body: dict[str, Any]) -> list[tuple[str, str]]:
    """``(role, text)`` of every message a model request carried."""
    return [(str(m.get("role")), text_of(m.get("content"))) for m in messages_of(body)]


# 12: agents chained in an orchestration ----------------------------------------------------------


@pytest.mark.e2e
class TestOrchestrationChainingAgents:
    NAME = "12_orchestration_chaining_agents"
    AGENTS = ("Researcher", "Writer", "Editor")

    @pytest.fixture(scope="class")
    def sample(self, azurite: AzuriteInstance, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sample]:
        with running(self.NAME, azurite, tmp_path_factory) as sample:
            yield sample

    def test_health_lists_the_chain(self, sample: Sample) -> None:
        code, body = sample.call("GET", "/health")
        assert code == 200 and [a["name"] for a in body["agents"]] == list(self.AGENTS)
        assert [name for name, _ in module_constant(self.NAME, "STEPS")] == list(self.AGENTS)

    def test_each_agent_gets_the_previous_agents_text(self, sample: Sample) -> None:
        topic = f"Cordless drills for beginners ({key('topic')})"
        notes = "- 18 V is plenty for furniture\n- brushless motors last longer"
        draft = "Your first drill does not need to be big. Eighteen volts will do."
        final = "Choosing your first drill\n\nYour first drill need not be big: 18 V will do."
        # The Researcher thinks for a moment, so the custom status can be seen on its step.
        sample.model.script(Reply.text(notes, delay_seconds=1.0), Reply.text(draft), Reply.text(final))
        started = start(sample, "/articles", {"topic": f"  {topic} "})
        instance = started["id"]
        running_status = sample.eventually(
            "GET", started["statusQueryGetUri"], lambda c, b: c == 202 and b["customStatus"] is not None
        )
        assert running_status["customStatus"] == {"completedSteps": 0, "of": 3, "running": "Researcher"}

        status = finished(sample, started)
        assert status["runtimeStatus"] == "Completed" and status["name"] == "article_pipeline", status
        assert status["customStatus"] == {"completedSteps": 3, "of": 3, "running": None}
        assert status["output"] == {
            "topic": topic,
            "article": final,
            "steps": [
                {"agent": "Researcher", "sessionId": f"@Researcher@orch-{instance}", "text": notes},
                {"agent": "Writer", "sessionId": f"@Writer@orch-{instance}", "text": draft},
                {"agent": "Editor", "sessionId": f"@Editor@orch-{instance}", "text": final},
            ],
        }

        # What each agent was sent, in order: its own instructions, the topic, the previous agent's text.
        instructions = module_constant(self.NAME, "INSTRUCTIONS")
        researcher, writer, editor = sample.model.asked(topic)
        assert [system_text(r) for r in (researcher, writer, editor)] == [instructions[a] for a in self.AGENTS]
        assert conversation(researcher)[1:] == [("user", f"Research this topic for a blog post: {topic}")]
        assert conversation(writer)[1:] == [
            ("user", f"Write a blog post about '{topic}' from these research notes:\n\n{notes}")
        ]
        assert conversation(editor)[1:] == [("user", f"Edit this blog post about '{topic}':\n\n{draft}")]
        assert notes not in last_user_text(editor)  # the Editor sees the draft, not the notes

        # Every step is an ordinary session, readable over HTTP.
        for agent, reply in zip(self.AGENTS, (notes, draft, final), strict=True):
            entries = history(sample, agent, f"orch-{instance}")
            assert [e["role"] for e in entries] == ["user", "assistant"] and entries[1]["content"] == reply

    def test_a_failed_step_stops_the_chain(self, sample: Sample) -> None:
        topic = f"Impact drivers ({key('failing')})"
        sample.model.script(Reply.text("- torque matters"), Reply.error(400))  # 400: no retries
        status = finished(sample, start(sample, "/articles", {"topic": topic}))
        assert status["runtimeStatus"] == "Failed", status
        assert status["output"] == (
            "Orchestrator function 'article_pipeline' failed: "
            "agent_run_failed: The model service answered with HTTP 400."
        )
        assert status["customStatus"] == {"completedSteps": 1, "of": 3, "running": "Writer"}
        # The Researcher and the Writer were asked; the Editor never was.
        assert [system_text(r) for r in sample.model.asked(topic)] == [
            module_constant(self.NAME, "INSTRUCTIONS")[a] for a in ("Researcher", "Writer")
        ]

    @pytest.mark.parametrize("body", [{}, {"topic": "   "}, {"topic": 7}, {"topic": "x" * 501}, ["topic"], b"{"])
    def test_the_topic_is_required(self, sample: Sample, body: Any) -> None:
        code, answer = sample.call("POST", "/articles", body)
        assert code == 400 and answer["error"]["code"] == "topic_required", answer


# 13: agents in parallel ------------------------------------------------------------------------------


@pytest.mark.e2e
class TestParallelAgents:
    NAME = "13_parallel_agents"
    EXPERTS = ("MarketAnalyst", "Engineer", "CustomerAdvocate")

    @pytest.fixture(scope="class")
    def sample(self, azurite: AzuriteInstance, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sample]:
        with running(self.NAME, azurite, tmp_path_factory) as sample:
            yield sample

    @pytest.fixture
    def panel_model(self, sample: Sample) -> Iterator[dict[str, list[float]]]:
        """Answer as the agent the request is for (told by its instructions); record when each was asked.

        Experts think for 2 s each; the Moderator answers at once. Engineers whose question contains
        "FAIL" get an HTTP 400 (not retried).
        """
        agents = {text: name for name, text in module_constant(self.NAME, "INSTRUCTIONS").items()}
        asked: dict[str, list[float]] = {}
        lock = threading.Lock()

        def respond(body: dict[str, Any]) -> Reply:
            agent = agents[system_text(body)]
            with lock:
                asked.setdefault(agent, []).append(time.monotonic())
            if agent == "Moderator":
                return Reply.text("Two for, one against: start small.")
            if agent == "Engineer" and "FAIL" in last_user_text(body):
                return Reply.error(400)
            return Reply.text(f"{agent}'s view. Verdict: for", delay_seconds=2.0)

        sample.model.server.set_responder(respond)
        try:
            yield asked
        finally:
            sample.model.server.set_responder(None)

    def test_health_lists_experts_and_moderator(self, sample: Sample) -> None:
        code, body = sample.call("GET", "/health")
        assert code == 200 and [a["name"] for a in body["agents"]] == [*self.EXPERTS, "Moderator"]
        assert module_constant(self.NAME, "EXPERTS") == list(self.EXPERTS)

    def test_experts_answer_at_once_and_the_moderator_sums_up(
        self, sample: Sample, panel_model: dict[str, list[float]]
    ) -> None:
        question = f"Should we rent out tools by the day? ({key('panel')})"
        started = start(sample, "/panels", {"question": question})
        status = finished(sample, started)
        assert status["runtimeStatus"] == "Completed" and status["name"] == "expert_panel", status
        answers = [{"agent": a, "text": f"{a}'s view. Verdict: for"} for a in self.EXPERTS]
        assert status["output"] == {
            "question": question,
            "answers": answers,
            "summary": "Two for, one against: start small.",
        }
        assert status["customStatus"] == {"stage": "done", "experts": list(self.EXPERTS)}

        # All three experts were asked, each once, each the same question in a conversation of its own.
        requests = sample.model.asked(question)
        experts = requests[:3]
        assert sorted(system_text(r) for r in experts) == sorted(
            module_constant(self.NAME, "INSTRUCTIONS")[a] for a in self.EXPERTS
        )
        for request in experts:
            assert conversation(request)[1:] == [("user", f"The panel's question: {question}")]
        # In parallel: every expert was asked before the first (2 s) answer came back (one after the other,
        # the last would have been asked at least 4 s after the first) ...
        firsts = [panel_model[a][0] for a in self.EXPERTS]
        assert max(firsts) - min(firsts) < 1.5, panel_model
        # ... and the Moderator only after all of them, with every answer under its expert's name.
        [moderator] = requests[3:]
        assert panel_model["Moderator"][0] > max(firsts)
        summary_prompt = last_user_text(moderator)
        assert summary_prompt.startswith(f"The panel's question: {question}\n\nThe experts' answers:\n\n")
        assert summary_prompt.endswith("\n\n".join(f"{a['agent']}:\n{a['text']}" for a in answers))

        for agent in [*self.EXPERTS, "Moderator"]:
            assert len(history(sample, agent, f"orch-{started['id']}")) == 2

    def test_a_failed_expert_fails_the_panel(self, sample: Sample, panel_model: dict[str, list[float]]) -> None:
        question = f"FAIL: should we sell used tools? ({key('failing')})"
        status = finished(sample, start(sample, "/panels", {"question": question}))
        assert status["runtimeStatus"] == "Failed", status
        assert status["output"] == (
            "Orchestrator function 'expert_panel' failed: agent_run_failed: The model service answered with HTTP 400."
        )
        assert sorted(panel_model) == sorted(self.EXPERTS)  # the Moderator was never asked
        assert status["customStatus"] == {"stage": "asking", "experts": list(self.EXPERTS)}

    @pytest.mark.parametrize("body", [{}, {"question": ""}, {"question": None}, {"question": "?" * 1001}, b"no"])
    def test_the_question_is_required(self, sample: Sample, body: Any) -> None:
        code, answer = sample.call("POST", "/panels", body)
        assert code == 400 and answer["error"]["code"] == "question_required", answer


# 14: an agent's draft under human review -------------------------------------------------------------


def awaiting(sample: Sample, instance: str, revision: int) -> dict[str, Any]:
    """``GET /api/reviews/{id}`` once draft ``revision`` waits for a decision."""

    def ready(code: int, body: Any) -> bool:
        review = (body or {}).get("review") or {}
        return code == 200 and review.get("state") == "awaiting_review" and review.get("revision") == revision

    body: dict[str, Any] = sample.eventually("GET", f"/reviews/{instance}", ready)
    return body


def decide(sample: Sample, instance: str, body: Any) -> tuple[int, Any]:
    return sample.call("POST", f"/reviews/{instance}/decision", body)


def review_done(sample: Sample, instance: str, timeout: float = 30.0) -> dict[str, Any]:
    body: dict[str, Any] = sample.eventually(
        "GET", f"/reviews/{instance}", lambda c, b: c == 200 and b["runtimeStatus"] == "Completed", timeout
    )
    return body


@pytest.mark.e2e
class TestAgentHumanReview:
    NAME = "14_agent_human_review"

    @pytest.fixture(scope="class")
    def sample(self, azurite: AzuriteInstance, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sample]:
        with running(self.NAME, azurite, tmp_path_factory) as sample:  # default timeout: one day
            yield sample

    def begin(self, sample: Sample, brief: str, *drafts: str) -> str:
        sample.model.script(*(Reply.text(d) for d in drafts))
        return str(start(sample, "/reviews", {"brief": brief})["id"])

    def test_health_lists_the_copywriter(self, sample: Sample) -> None:
        code, body = sample.call("GET", "/health")
        assert code == 200 and [a["name"] for a in body["agents"]] == ["Copywriter"]

    def test_approve_the_first_draft(self, sample: Sample) -> None:
        brief = f"Announce the spring sale: 20% off cordless drills ({key('brief')})"
        draft = "Spring is here, and so are 20% off cordless drills."
        instance = self.begin(sample, brief, draft)
        before = datetime.now(timezone.utc)
        view = awaiting(sample, instance, 1)
        assert view["runtimeStatus"] == "Running" and view["output"] is None
        review = view["review"]
        assert review == {
            "state": "awaiting_review",
            "revision": 1,
            "draft": draft,
            "deadline": review["deadline"],
            "revisionsLeft": 3,
            "event": "ReviewDecision-1",
        }
        # REVIEW_TIMEOUT_SECONDS as in local.settings.sample.json (the host's fallback): a day to decide.
        deadline = datetime.fromisoformat(review["deadline"])
        assert timedelta(hours=23, minutes=59) < deadline - before < timedelta(hours=24, minutes=1)

        code, accepted = decide(sample, instance, {"decision": "approve", "feedback": " Lovely. "})
        assert code == 202 and accepted == {"id": instance, "decision": "approve", "feedback": "Lovely.", "revision": 1}
        done = review_done(sample, instance)
        assert done["review"] == {"state": "approved", "revision": 1}
        assert done["output"] == {
            "outcome": "approved",
            "approved": True,
            "draft": draft,
            "revision": 1,
            "reviews": [{"revision": 1, "decision": "approve", "feedback": "Lovely."}],
            "sessionId": f"@Copywriter@orch-{instance}",
        }
        [request] = sample.model.asked(brief)
        assert conversation(request)[1:] == [("user", f"Write a first draft for this brief:\n\n{brief}")]
        assert system_text(request) == module_constant(self.NAME, "INSTRUCTIONS")

        code, body = decide(sample, instance, {"decision": "approve"})
        assert code == 409 and body["error"]["code"] == "not_awaiting_review", body

    def test_revise_then_approve_in_one_conversation(self, sample: Sample) -> None:
        brief = f"Announce free shipping over 50 EUR ({key('brief')})"
        first, second = "Free shipping over 50 EUR.", "Free shipping on every order over 50 EUR, starting today."
        instance = self.begin(sample, brief, first, second)
        awaiting(sample, instance, 1)
        feedback = f"Say that it starts today. ({key('feedback')})"
        code, accepted = decide(sample, instance, {"decision": "revise", "feedback": feedback, "revision": 1})
        assert code == 202 and accepted["revision"] == 1, accepted

        view = awaiting(sample, instance, 2)
        assert view["review"]["draft"] == second and view["review"]["revisionsLeft"] == 2
        # The revision request carries the feedback, after the brief and the first draft: same session.
        [revise] = sample.model.asked(feedback)
        assert conversation(revise)[1:] == [
            ("user", f"Write a first draft for this brief:\n\n{brief}"),
            ("assistant", first),
            (
                "user",
                f"The reviewer asks for changes to your latest draft:\n\n{feedback}\n\nAnswer with the revised text.",
            ),
        ]

        code, body = decide(sample, instance, {"decision": "approve", "revision": 1})
        assert code == 409 and body["error"]["code"] == "stale_revision", body
        code, _ = decide(sample, instance, {"decision": "approve", "revision": 2})
        assert code == 202
        done = review_done(sample, instance)
        assert done["output"]["outcome"] == "approved" and done["output"]["draft"] == second
        assert done["output"]["reviews"] == [
            {"revision": 1, "decision": "revise", "feedback": feedback},
            {"revision": 2, "decision": "approve", "feedback": None},
        ]
        entries = history(sample, "Copywriter", f"orch-{instance}")
        assert [e["content"] for e in entries if e["role"] == "assistant"] == [first, second]

    def test_late_and_repeated_decisions_do_not_reach_the_next_draft(self, sample: Sample) -> None:
        brief = f"Announce the new store hours ({key('brief')})"
        first, second = "Open until 8 pm.", "Now open until 8 pm on weekdays."
        sample.model.script(Reply.text(first), Reply.text(second))
        started = start(sample, "/reviews", {"brief": brief})
        instance = started["id"]
        assert awaiting(sample, instance, 1)["review"]["event"] == "ReviewDecision-1"
        feedback = f"Say which days. ({key('feedback')})"
        revise = {"decision": "revise", "feedback": feedback, "revision": 1}
        # A double click: the second request may still find draft 1 under review (202: its event is raised
        # under draft 1's name, which nothing waits for any more), or draft 1 already done with (409).
        answers = [decide(sample, instance, revise), decide(sample, instance, revise)]
        assert answers[0][0] == 202 and answers[1][0] in (202, 409), answers
        if answers[1][0] == 409:
            assert answers[1][1]["error"]["code"] in ("not_awaiting_review", "stale_revision"), answers
        # And the same decision again through the management API, once draft 1 is certainly done with.
        raise_url = started["sendEventPostUri"].replace("{eventName}", "ReviewDecision-1")
        view = awaiting(sample, instance, 2)
        assert view["review"]["event"] == "ReviewDecision-2" and view["review"]["draft"] == second
        assert sample.call("POST", raise_url, revise)[0] == 202

        time.sleep(0.5)  # time enough for a late event to be (wrongly) taken for the decision on draft 2
        view = awaiting(sample, instance, 2)
        assert view["runtimeStatus"] == "Running" and view["review"]["revisionsLeft"] == 2
        assert decide(sample, instance, {"decision": "approve"})[0] == 202
        done = review_done(sample, instance)
        assert done["output"]["revision"] == 2 and done["output"]["reviews"] == [
            {"revision": 1, "decision": "revise", "feedback": feedback},
            {"revision": 2, "decision": "approve", "feedback": None},
        ]
        assert len(sample.model.asked(feedback)) == 1  # one revision, not two

    def test_an_event_raised_by_hand_that_is_no_decision_fails_the_review(self, sample: Sample) -> None:
        started = start(sample, "/reviews", {"brief": f"Announce gift cards ({key('brief')})"})
        awaiting(sample, started["id"], 1)
        raise_url = started["sendEventPostUri"].replace("{eventName}", "ReviewDecision-1")
        assert sample.call("POST", raise_url, {"decision": "yes please"})[0] == 202
        status = finished(sample, started)
        assert status["runtimeStatus"] == "Failed", status
        assert "The review event is not a decision: 'decision' must be 'approve' or 'revise'." in status["output"]

    def test_revisions_are_bounded(self, sample: Sample) -> None:
        limit = module_constant(self.NAME, "MAX_REVISIONS")
        brief = f"Announce the tool library ({key('brief')})"
        drafts = [f"Draft {n} of the tool library news." for n in range(1, limit + 2)]
        instance = self.begin(sample, brief, *drafts)
        for revision in range(1, limit + 2):
            view = awaiting(sample, instance, revision)
            assert view["review"]["draft"] == drafts[revision - 1]
            assert view["review"]["revisionsLeft"] == limit - (revision - 1)
            code, _ = decide(sample, instance, {"decision": "revise", "feedback": f"Try again ({revision})."})
            assert code == 202
        done = review_done(sample, instance)
        assert done["review"] == {"state": "revision_limit_reached", "revision": limit + 1}
        output = done["output"]
        assert output["outcome"] == "revision_limit_reached" and output["approved"] is False
        assert output["draft"] == drafts[-1] and len(output["reviews"]) == limit + 1
        # The first draft and `limit` revisions: the last request for changes was not sent to the agent.
        assert len(history(sample, "Copywriter", f"orch-{instance}")) == 2 * (limit + 1)

    @pytest.mark.parametrize(
        ("body", "code"),
        [
            (b"approve", "invalid_json"),
            (b"", "invalid_json"),
            (["approve"], "invalid_json"),
            ({}, "invalid_decision"),
            ({"decision": "maybe"}, "invalid_decision"),
            ({"decision": ["approve"]}, "invalid_decision"),
            ({"decision": "approve", "approved": True}, "unknown_field"),
            ({"decision": "revise"}, "feedback_required"),
            ({"decision": "revise", "feedback": "   "}, "feedback_required"),
            ({"decision": "revise", "feedback": 5}, "invalid_feedback"),
            ({"decision": "revise", "feedback": "x" * 2001}, "invalid_feedback"),
            ({"decision": "approve", "revision": 0}, "invalid_revision"),
            ({"decision": "approve", "revision": "1"}, "invalid_revision"),
            ({"decision": "approve", "revision": True}, "invalid_revision"),
        ],
    )
    def test_bad_decision_bodies(self, sample: Sample, body: Any, code: str) -> None:
        status, answer = decide(sample, "any-instance", body)
        assert status == 400 and answer["error"]["code"] == code, answer

    def test_bad_bodies_leave_the_review_waiting_and_unknown_reviews_are_404(self, sample: Sample) -> None:
        brief = f"Announce the drill repair service ({key('brief')})"
        instance = self.begin(sample, brief, "We repair drills now.")
        awaiting(sample, instance, 1)
        for body in ({"decision": "revise"}, {"decision": "approve", "comment": "ok"}, b"{"):
            assert decide(sample, instance, body)[0] == 400
        view = awaiting(sample, instance, 1)  # still draft 1, nothing was raised
        assert view["review"]["revisionsLeft"] == 3 and len(sample.model.asked(brief)) == 1

        for unknown in (key("no-such-review"), "bad%20id", "@agent-copywriter@orch-x"):
            code, body = decide(sample, unknown, {"decision": "approve"})
            assert code == 404 and body["error"]["code"] == "review_not_found", (unknown, body)
            code, body = sample.call("GET", f"/reviews/{unknown}")
            assert code == 404 and body["error"]["code"] == "review_not_found", (unknown, body)

        assert decide(sample, instance, {"decision": "approve"})[0] == 202
        assert review_done(sample, instance)["output"]["outcome"] == "approved"

    @pytest.mark.parametrize("body", [{}, {"brief": " "}, {"brief": ["x"]}, {"brief": "x" * 2001}, b"[]"])
    def test_the_brief_is_required(self, sample: Sample, body: Any) -> None:
        code, answer = sample.call("POST", "/reviews", body)
        assert code == 400 and answer["error"]["code"] == "brief_required", answer

    def test_no_decision_before_the_deadline(
        self, azurite: AzuriteInstance, tmp_path_factory: pytest.TempPathFactory
    ) -> None:
        with running(self.NAME, azurite, tmp_path_factory, REVIEW_TIMEOUT_SECONDS="1.5") as sample:
            brief = f"Announce the workshop ({key('brief')})"
            instance = self.begin(sample, brief, "Join our Saturday workshop.")
            view = awaiting(sample, instance, 1)
            deadline = datetime.fromisoformat(view["review"]["deadline"])
            done = review_done(sample, instance)
            assert datetime.now(timezone.utc) >= deadline
            assert done["review"] == {"state": "timed_out", "revision": 1}
            assert done["output"] == {
                "outcome": "timed_out",
                "approved": False,
                "draft": "Join our Saturday workshop.",
                "revision": 1,
                "reviews": [],
                "sessionId": f"@Copywriter@orch-{instance}",
            }
            code, body = decide(sample, instance, {"decision": "approve"})
            assert code == 409 and body["error"]["code"] == "not_awaiting_review", body

    def test_a_bad_timeout_setting_stops_the_app(
        self, azurite: AzuriteInstance, tmp_path_factory: pytest.TempPathFactory
    ) -> None:
        with (
            pytest.raises(RuntimeError, match="REVIEW_TIMEOUT_SECONDS must be more than 0"),
            running(self.NAME, azurite, tmp_path_factory, REVIEW_TIMEOUT_SECONDS="0"),
        ):
            pass
