"""What the add-node probes found, as plain values: the donor beyond the upgrade's probe, and the new host."""

from __future__ import annotations

from dataclasses import dataclass

from confluo.api.base import ClusterInfo
from confluo.probe.facts import BalancerFacts, NodeFacts


@dataclass(frozen=True)
class DonorFacts:
    """The donor's local home and sizes, read with `sudo -n tar` so a home the login user cannot read is no
    obstacle. `cfg_xml` None: unreadable."""

    node: NodeFacts  # the upgrade's probe of the donor: its installation, files, service definition, sudo
    cfg_xml: str | None = None
    install_bytes: int | None = None  # what the copy of the installation holds (without work/, logs/, temp/)
    home_bytes: int | None = None  # what the copy of the local home holds (without what a node rebuilds)
    login_free_mb: int | None = None  # where the copies wait in the login user's cache
    shared_home: str | None = None  # as the donor's confluence.cfg.xml (or the inventory) names it
    shared_sha256: str | None = None  # of <shared>/confluence.cfg.xml as the donor reads it
    error: str | None = None


@dataclass(frozen=True)
class Mount:
    """Free space where a path would go (its nearest existing folder), and the mount it is on."""

    free_mb: int
    mount: str


@dataclass(frozen=True)
class NewHostFacts:
    """The host the new node goes on."""

    error: str | None = None  # unreachable, or the probe failed
    login_user: str | None = None
    login_home: str = ""
    install_entry: str | None = None  # what is at the installation's path: None (nothing), "clone", "other"
    link_entry: str | None = None  # the same for <base>/current in the symlink layout
    home_entry: str | None = None  # None (absent or empty), "clone" (confluo's copy for this node), "other"
    shared_found: bool = False  # the shared home's path is a folder there
    shared_sha256: str | None = None  # of <shared>/confluence.cfg.xml as the new host reads it
    marker_seen: bool | None = None  # the marker the donor wrote into the shared home (None: not looked)
    install_mount: Mount | None = None
    home_mount: Mount | None = None
    login_mount: Mount | None = None
    sudo_denied: tuple[str, ...] = ()

    @property
    def reachable(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class AddNodeFacts:
    cluster: ClusterInfo | None
    cluster_error: str | None
    donor: DonorFacts
    new_host: NewHostFacts
    local_free_mb: int | None = None  # on this machine, where the copies pass through
    balancer: BalancerFacts | None = None  # the new node's server, as the load balancer knows it (or not)
