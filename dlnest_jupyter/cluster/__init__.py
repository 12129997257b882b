"""Several machines on one Ray cluster (the `ray` extra): cards named by node, reservations that
Ray's own accounting makes atomic across every server on the cluster, and tasks started on their
node by a per-node agent. Nothing here is imported unless a cluster address is configured.

- `names.py`: the resource and actor names every node and server agree on (pure);
- `node_start.py`: the `dlnest ray-node` command, which joins a machine with its cards;
- `sidecar.py`: the one process of a server that talks to Ray (so a lost head never takes the
  Jupyter server with it), `sidecar_client.py`, the server's side of it, and `protocol.py`,
  what they say to each other (its `Op`s, Ray-free);
- `errors.py`: the link's exceptions, one class each, raised on both sides of it;
- `node_agent.py`: the actor on each node that starts, watches and stops that node's tasks (and
  `watcher.py`, which ends a task whose node left the cluster);
- `link.py`: a server's link to the cluster (its sidecar, the last view, its names for cards);
- `cluster_devices.py`: the cluster's cards as devices, other servers' reservations as a ledger;
- `ray_executor.py`: the `Executor` the service starts tasks and analyzer kernels through.
"""
