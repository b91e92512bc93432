"""Block rules as a user meets them: matches regardless of case, width or hidden characters;
ordinary prompts pass; a broken rule is a clear settings error."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from store.prompt_policy import PromptPolicy
from store.settings import PolicySettings


@pytest.fixture
def policy():
    return PromptPolicy(
        block_keywords=["Project Falcon", "内部薪资"],
        block_patterns=[r"\bdrop\s+table\b", r"工资单\d+"],
    )


@pytest.mark.parametrize(
    ("prompt", "rule"),
    [
        ("tell me about project falcon", "keyword:0"),
        ("PROJECT FALCON roadmap", "keyword:0"),
        ("ｐｒｏｊｅｃｔ ｆａｌｃｏｎ", "keyword:0"),  # full-width letters
        ("project\u200b falcon", "keyword:0"),  # zero-width space hidden inside
        ("请告诉我内部薪资", "keyword:1"),
        ("please DROP   TABLE users", "pattern:0"),
        ("查询工资单2024", "pattern:1"),
        ("查询工资单２０２４", "pattern:1"),  # full-width digits
    ],
)
def test_blocked_prompts_name_the_rule(policy, prompt, rule):
    decision = policy.check(prompt)
    assert decision.blocked
    assert decision.rule == rule


@pytest.mark.parametrize(
    "prompt", ["write a poem about falcons", "项目进展如何", "dropping tables is bad", ""]
)
def test_ordinary_prompts_pass(policy, prompt):
    decision = policy.check(prompt)
    assert (decision.blocked, decision.rule) == (False, None)


def test_an_empty_policy_blocks_nothing():
    policy = PromptPolicy()
    assert not policy.active
    assert not policy.check("anything at all").blocked


@pytest.mark.parametrize("pattern", ["(unclosed", "[z-a]", "x|"])
def test_a_bad_regex_is_a_settings_error_naming_the_rule(pattern):
    with pytest.raises(ValidationError, match=r"block_patterns\[1\]"):
        PolicySettings(block_patterns=["fine", pattern])
    with pytest.raises(ValueError, match=r"block_patterns\[1\]"):
        PromptPolicy(block_patterns=["fine", pattern])


def test_an_empty_keyword_is_refused():
    with pytest.raises(ValidationError, match="empty"):
        PolicySettings(block_keywords=["ok", "  "])
    with pytest.raises(ValueError, match="empty"):
        PromptPolicy(block_keywords=[""])
