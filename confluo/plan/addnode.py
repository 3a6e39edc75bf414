"""`confluo add-node`: a new node copied from a serving donor (seed 004, step 7: the installation directory and
the local home), made its own, started once no other node starts (step 9), ACTIVE in the cluster on the donor's
version. The donor and every other node are never touched but for the donor's reads."""

from __future__ import annotations

import posixpath

from confluo import identity
from confluo.errors import RefusedError
from confluo.inventory import Inventory, Node
from confluo.layout import CFG_XML, HOME_NOT_COPIED, INIT_PROPERTIES, RUNTIME_DIRS
from confluo.plan.addnode_rules import (
    AddNodeRequest,
    add_node_notes,
    cluster_reasons,
    disk_reasons,
    donor_reasons,
    identity_reasons,
    in_balancer,
    new_host_reasons,
    node,
)
from confluo.plan.model import NodeWork, Plan
from confluo.plan.pool import PoolPlan
from confluo.probe.facts import Facts
from confluo.probe.newnode_facts import AddNodeFacts
from confluo.steps.base import Host, Step
from confluo.steps.clone import CloneInstall, SeedLocalHome
from confluo.steps.newnode import Edit, EditIdentity, JoinCluster
from confluo.steps.pool import AddServer
from confluo.steps.repoint import Repoint
from confluo.steps.service import StartNode, StopNode

SETENV, SERVER_XML, USER_SH = "bin/setenv.sh", "conf/server.xml", "bin/user.sh"


def install_paths(new: Node, donor_install: str) -> tuple[str, str | None]:
    """(the new installation, its `current` link or None): the donor's release folder's name, under the new
    node's base (symlink layout), or the new node's install.path (plain layout)."""
    if new.install.layout == "symlink":
        assert new.install.base is not None
        base = str(new.install.base)
        return posixpath.join(base, posixpath.basename(donor_install.rstrip("/"))), posixpath.join(base, "current")
    assert new.install.path is not None
    return str(new.install.path), None


def build_add_node_plan(inventory: Inventory, request: AddNodeRequest, facts: AddNodeFacts) -> Plan:
    donor_install = facts.donor.node.old_install or ""
    new = node(inventory, request.new)
    install, link = install_paths(new, donor_install)
    reasons = cluster_reasons(facts.cluster, facts.cluster_error) + donor_reasons(inventory, request, facts)
    reasons += identity_reasons(inventory, request, facts)
    if not reasons:
        reasons += new_host_reasons(inventory, request, facts, install) + disk_reasons(inventory, request, facts)
    if reasons:
        raise RefusedError(reasons, hint="fix these, then run it again; nothing was changed")
    version = facts.donor.node.installed_version or ""
    return Plan(
        cluster_name=inventory.cluster.name,
        source_version=version,
        target_version=version,
        rolling=(NodeWork(new.name, _steps(inventory, request, facts, install, link)),),
        goal="add-node",
        notes=add_node_notes(inventory, request, facts),
    )


def _steps(
    inventory: Inventory, request: AddNodeRequest, facts: AddNodeFacts, install: str, link: str | None
) -> tuple[Step, ...]:
    donor, new = node(inventory, request.donor), node(inventory, request.new)
    found, host_facts = facts.donor.node, facts.new_host
    donor_host, host = Host(donor, found.login_user), Host(new, host_facts.login_user)
    run_user = (new.run_as or host_facts.login_user) if new.sudo else None
    ends = (host, donor_host, found.login_home, host_facts.login_home)
    clone = CloneInstall(*ends, found.old_install or "", install, RUNTIME_DIRS, request.local_dir, owner=None,
                         owned_dirs=RUNTIME_DIRS, runtime_owner=run_user)  # fmt: skip
    steps: list[Step] = [clone]
    if link is not None:
        steps.append(Repoint(host, from_install="", to_install=install, link=link))
    steps.append(SeedLocalHome(*ends, str(donor.home), str(new.home), HOME_NOT_COPIED, request.local_dir,
                               owner=run_user, owned_dirs=("logs",)))  # fmt: skip
    steps += _identity(donor, new, request, facts, install)
    service_install = link or install
    steps.append(JoinCluster(
        host, StartNode(host, install, service_install, found.installed_version or ""),
        StopNode(host, install, service_install),
    ))  # fmt: skip
    pool = PoolPlan(inventory, Facts(nodes=(), cluster=facts.cluster, cluster_error=None, archive=None,
                                     archive_error=None, balancer=facts.balancer))  # fmt: skip
    if in_balancer(inventory, request, facts):  # its server was added ahead of it: into the pool, seen UP
        steps += pool.put_back(host)
    elif facts.balancer is not None and facts.balancer.addition is not None:
        steps.append(AddServer(host, donor.balancer_server, facts.balancer.addition))
        steps += pool.put_back(host)
    return tuple(steps)


def _identity(donor: Node, new: Node, request: AddNodeRequest, facts: AddNodeFacts, install: str) -> list[Step]:
    files, host = facts.donor.node.files, Host(new, facts.new_host.login_user)

    def edit(rel: str, change: Edit, text: str | None = None) -> EditIdentity:
        return EditIdentity(
            host, posixpath.join(install, rel), change, text if text is not None else files.get(rel, "")
        )

    steps: list[Step] = [edit(SETENV, Edit("node-name", new.name))]
    donor_addresses = {donor.host, *(n.ip_address for n in (facts.cluster.nodes if facts.cluster else ())
                                    if n.name == donor.name)}  # fmt: skip
    if donor_addresses & set(identity.connector_addresses(files.get(SERVER_XML, ""))):
        steps.append(edit(SERVER_XML, Edit("connector", request.address, old=tuple(sorted(donor_addresses)))))
    if new.run_as and new.run_as != donor.run_as:
        steps.append(edit(USER_SH, Edit("conf-user", new.run_as)))
    if str(new.home) != str(donor.home):
        steps.append(edit(INIT_PROPERTIES, Edit("home", str(new.home))))
    cfg = Edit("local-home", request.address, old=(str(new.home),), name=new.name, donor_home=str(donor.home))
    steps.append(EditIdentity(host, posixpath.join(str(new.home), CFG_XML), cfg, facts.donor.cfg_xml or ""))
    return steps
