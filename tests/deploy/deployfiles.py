"""Readers for the deployment files: the Dockerfile as stages of instructions, the compose file, .dockerignore."""

import fnmatch
import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Instruction:
    keyword: str  # upper-case: FROM, RUN, COPY, ...
    args: str  # the rest of the line, continuation lines joined


@dataclass
class Stage:
    name: str
    base: str  # image or the name of an earlier stage
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]


@dataclass
class Dockerfile:
    global_args: dict[str, str]
    stages: dict[str, Stage]

    def chain(self, target: str) -> list[Stage]:
        """The stage and the stages it is built FROM, the target last."""
        stages = [self.stages[target]]
        while stages[0].base in self.stages:
            stages.insert(0, self.stages[stages[0].base])
        return stages

    def effective(self, target: str, keyword: str) -> Instruction | None:
        """The instruction of this kind in force for the target (the last one along its FROM chain)."""
        found = None
        for stage in self.chain(target):
            for instruction in stage.all(keyword):
                found = instruction
        return found


def parse_dockerfile(text: str) -> Dockerfile:
    lines: list[str] = []
    pending = ""
    for raw in text.splitlines():
        if raw.lstrip().startswith("#"):  # comments, also between continuation lines
            continue
        if raw.endswith("\\"):  # Docker drops the escape and the newline, nothing else
            pending += raw[:-1]
            continue
        line = (pending + raw).strip()
        pending = ""
        if line:
            lines.append(line)
    global_args: dict[str, str] = {}
    stages: dict[str, Stage] = {}
    current: Stage | None = None
    for line in lines:
        keyword, _, args = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            match = re.fullmatch(r"(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?", args.strip(), re.IGNORECASE)
            assert match, f"unreadable FROM: {line}"
            name = match.group(2) or f"stage{len(stages)}"
            current = stages[name] = Stage(name=name, base=match.group(1))
        elif current is None:
            assert keyword == "ARG", f"only ARG may come before the first FROM: {line}"
            key, _, value = args.strip().partition("=")
            global_args[key] = value
        else:
            current.instructions.append(Instruction(keyword, args.strip()))
    return Dockerfile(global_args=global_args, stages=stages)


def exec_form(instruction: Instruction) -> list[str]:
    """CMD/ENTRYPOINT/HEALTHCHECK CMD arguments as a list (JSON exec form or shell form)."""
    args = instruction.args
    if instruction.keyword == "HEALTHCHECK":
        args = args[args.index("CMD") + 3 :].strip() if "CMD" in args else ""
    if args.startswith("["):
        return json.loads(args)
    return ["sh", "-c", args]


def shell_words(instruction: Instruction) -> list[str]:
    return shlex.split(instruction.args)


def dockerignore_rules() -> list[tuple[bool, str]]:
    rules = []
    for raw in (ROOT / ".dockerignore").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        rules.append((negate, line.lstrip("!").strip("/")))
    return rules


def is_ignored(path: str, rules: list[tuple[bool, str]]) -> bool:
    """Docker's rule: the last pattern matching the path (or one of its parent folders) decides."""
    parts = path.strip("/").split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    ignored = False
    for negate, pattern in rules:
        regex = fnmatch.translate(pattern).replace(".*", "[^/]*").replace("[^/]*[^/]*", ".*")
        if pattern.startswith("**/"):
            regex = "(?:.*/)?" + fnmatch.translate(pattern[3:]).replace(".*", "[^/]*")
        if any(re.fullmatch(regex, p) for p in prefixes):
            ignored = not negate
    return ignored
