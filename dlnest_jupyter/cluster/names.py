"""The names a cluster's nodes and servers agree on: pure functions, no Ray.

A node joins the cluster with one logical resource per card, holding the card's memory in MiB
(`dlnest_mb_<node>_<index>`), and one naming the node (`dlnest_node_<node>`). A task's
reservation asks for exactly the MiB it was placed with on exactly its cards, so Ray can neither
move it to another card nor let two servers take the same memory. Node names are ours (the
host name), not Ray's node ids, which change when a node's raylet restarts.
"""

from __future__ import annotations

import os
import re
import socket

from ..core.errors import ConfigError

NODE_NAME_ENV = "DLNEST_NODE_NAME"
NAMESPACE = "dlnest"  # Ray namespace of the node agents and reservations
NODE_PREFIX = "dlnest_node_"
CARD_PREFIX = "dlnest_mb_"
RESERVATION_PREFIX = "dlnest/"
_NODE = r"[A-Za-z0-9][A-Za-z0-9.-]{0,62}"
# Exactly ours: the `<resource>_group_<pg id>` copies Ray makes for placement groups never match.
_CARD_RESOURCE = re.compile(rf"{CARD_PREFIX}({_NODE})_(\d+)")
_NODE_RESOURCE = re.compile(rf"{NODE_PREFIX}({_NODE})")


def node_name(hostname: str | None = None) -> str:
    """This machine's node name: DLNEST_NODE_NAME, else its host name with the characters Ray
    names cannot hold replaced. A server's must be the name its machine joined the cluster by."""
    if hostname is None and os.environ.get(NODE_NAME_ENV):
        return checked_node_name(os.environ[NODE_NAME_ENV])
    raw = (hostname or socket.gethostname()).split(".")[0] or "node"
    return re.sub(r"[^A-Za-z0-9-]", "-", raw)[:63]


def checked_node_name(name: str) -> str:
    if not re.fullmatch(_NODE, name):
        raise ConfigError(
            f"node name {name!r}: use letters, digits, '.' and '-' (at most 63)", key="node"
        )
    return name


def card_name(node: str, index: int) -> str:
    """How users see a card: `boxA:0`."""
    return f"{node}:{index}"


def parse_card_name(name: str) -> tuple[str, int]:
    node, _, index = name.rpartition(":")
    return node, int(index)


def card_resource(node: str, index: int) -> str:
    return f"{CARD_PREFIX}{node}_{index}"


def node_resource(node: str) -> str:
    return f"{NODE_PREFIX}{node}"


def parse_card_resource(resource: str) -> tuple[str, int] | None:
    match = _CARD_RESOURCE.fullmatch(resource)
    return (match.group(1), int(match.group(2))) if match else None


def parse_node_resource(resource: str) -> str | None:
    match = _NODE_RESOURCE.fullmatch(resource)
    return match.group(1) if match else None


def node_resources(node: str, totals_mb: list[int]) -> dict[str, int]:
    """What `ray start --resources` declares for a node with cards of these sizes."""
    checked_node_name(node)
    return {
        node_resource(node): 1,
        **{card_resource(node, i): total for i, total in enumerate(totals_mb)},
    }


def agent_name(node: str) -> str:
    return f"dlnest-agent/{node}"


def owner_name(user: str, queue_id: str) -> str:
    """Whose reservations these are, cluster-wide: an OS user's queue."""
    return f"{user}:{queue_id}"


def owner_user(owner: str) -> str:
    """The OS user of an `owner_name`, as the dashboard shows other users."""
    return owner.partition(":")[0]


def reservation_name(owner: str, task_id: int) -> str:
    """A task's placement group: `dlnest/<owner>/<task id>`; `owner` names user and queue."""
    return f"{RESERVATION_PREFIX}{owner}/{task_id}"


def parse_reservation_name(name: str) -> tuple[str, int] | None:
    """(owner, task id) of one of our placement groups' names, else None."""
    if not name.startswith(RESERVATION_PREFIX):
        return None
    owner, _, task = name[len(RESERVATION_PREFIX) :].rpartition("/")
    return (owner, int(task)) if owner and task.isdigit() else None
