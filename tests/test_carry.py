"""The three-way carry of customization files: the decision table, the merge (lines and XML attributes) and
the checks a result must pass. Pure functions, table tests."""

from __future__ import annotations

import base64
import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from confluo.carry.decide import Outcome, Resolution, carry_file
from confluo.carry.merge import merge, xml_tokens
from confluo.carry.validate import problems
from confluo.configfiles import read_home, with_home
from confluo.probe.node import contents_summarized
from confluo.secrets import mask_secrets
from confluo.transport.base import CommandResult

SERVER = """<?xml version="1.0" encoding="UTF-8"?>
<Server port="8000" shutdown="SHUTDOWN">
    <Service name="Tomcat-Standalone">
        <!-- DEFAULT - Direct connector with no proxy -->
        <Connector port="8090" connectionTimeout="20000" redirectPort="8443"
                   maxThreads="48" minSpareThreads="10"
                   protocol="org.apache.coyote.http11.Http11NioProtocol"/>
        <!--
        <Connector port="8443" keystorePass="<MY_CERTIFICATE_PASSWORD>"/>
        -->
        <Engine name="Standalone" defaultHost="localhost">
            <Host name="localhost" appBase="webapps">
                <Valve className="org.apache.catalina.valves.AccessLogValve" maxDays="30"/>
            </Host>
        </Engine>
    </Service>
</Server>
"""
HARDENED = SERVER.replace('shutdown="SHUTDOWN"', 'shutdown="C0MP13X5HUTD0WN"')
SETENV = """CATALINA_OPTS="-Xms1024m -Xmx1024m ${CATALINA_OPTS}"
# vendor block
CATALINA_OPTS="-Dx=1 ${CATALINA_OPTS}"
export CATALINA_OPTS
"""


def edit(text: str, *pairs: tuple[str, str]) -> str:
    for old, new in pairs:
        assert old in text, old
        text = text.replace(old, new, 1)
    return text


@pytest.mark.parametrize(
    ("base", "mine", "theirs", "outcome", "result"),
    [
        ("a\n", "a\n", "b\n", Outcome.THEIRS, "b\n"),
        ("a\n", "b\n", "a\n", Outcome.MINE, "b\n"),
        ("a\n", "b\n", "b\n", Outcome.SAME, "b\n"),
        ("a\nx\nc\n", "A\nx\nc\n", "a\nx\nC\n", Outcome.MERGED, "A\nx\nC\n"),
        ("a\n", "b\n", "c\n", Outcome.CONFLICT, None),
        (None, "b\n", "c\n", Outcome.NO_BASE, None),
        (None, "b\n", "b\n", Outcome.SAME, "b\n"),
        ("a\n", "b\n", None, Outcome.NOT_SHIPPED, "b\n"),
        ("a\n", None, "a\n", Outcome.UNREAD, None),
    ],
)
def test_the_decision_table(base: str | None, mine: str | None, theirs: str | None, outcome: Outcome,
                            result: str | None) -> None:  # fmt: skip
    carried = carry_file("bin/setenv.sh", base=base, mine=mine, theirs=theirs)
    assert (carried.outcome, carried.result) == (outcome, result)
    assert carried.refused == (result is None)


def test_an_untouched_file_is_not_written_at_all() -> None:
    assert not carry_file("bin/user.sh", base="a\n", mine="a\n", theirs="b\n").writes
    assert carry_file("bin/user.sh", base="a\n", mine="m\n", theirs="a\n").writes


def test_an_unread_file_the_release_does_not_ship_is_copied_whole() -> None:
    carried = carry_file("conf/keystore.p12", base="", mine=None, theirs=None)
    assert carried.outcome is Outcome.NOT_SHIPPED and not carried.refused
    assert carried.copied_unseen and carried.writes


def test_two_way_only_when_the_inventory_accepts_it() -> None:
    carried = carry_file("bin/setenv.sh", base=None, mine="mine\n", theirs="new\n", accept_two_way=True)
    assert (carried.outcome, carried.result, carried.refused) == (Outcome.TWO_WAY, "mine\n", False)


@pytest.mark.parametrize(
    ("resolution", "outcome", "result"),
    [
        (Resolution("keep-mine"), Outcome.KEPT_MINE, "b\n"),
        (Resolution("take-release"), Outcome.TOOK_RELEASE, "c\n"),
        (Resolution("file", "/r", "resolved\n"), Outcome.RESOLVED_FILE, "resolved\n"),
    ],
)
def test_a_conflict_is_resolved_only_by_the_inventory(resolution: Resolution, outcome: Outcome, result: str) -> None:
    carried = carry_file("bin/setenv.sh", base="a\n", mine="b\n", theirs="c\n", resolution=resolution)
    assert (carried.outcome, carried.result, carried.refused) == (outcome, result, False)


def test_server_xml_keeps_the_admins_connector_and_takes_the_release_hardening_and_new_attribute() -> None:
    mine = edit(
        SERVER,
        ('<Connector port="8090"', '<Connector address="10.0.0.11" port="8090"'),
        ('maxThreads="48"', 'maxThreads="150"'),
        ('<Server port="8000"', '<Server port="8001"'),  # next to the shutdown attribute the release changes
        ('maxDays="30"', 'maxDays="90"'),
    )
    theirs = edit(HARDENED, ('minSpareThreads="10"', 'minSpareThreads="10" maxHttpHeaderSize="16384"'))
    carried = carry_file("conf/server.xml", base=SERVER, mine=mine, theirs=theirs)
    assert carried.outcome is Outcome.MERGED, carried.conflicts
    result = carried.result or ""
    for wanted in ('address="10.0.0.11"', 'maxThreads="150"', 'port="8001"', 'maxDays="90"',
                   'shutdown="C0MP13X5HUTD0WN"', 'maxHttpHeaderSize="16384"'):  # fmt: skip
        assert wanted in result
    assert problems("conf/server.xml", mine, result) == []


def test_one_attribute_changed_differently_on_both_sides_is_a_conflict_showing_both() -> None:
    mine = edit(SERVER, ('shutdown="SHUTDOWN"', 'shutdown="mine-only"'))
    carried = carry_file("conf/server.xml", base=SERVER, mine=mine, theirs=HARDENED)
    assert carried.outcome is Outcome.CONFLICT and carried.result is None
    (conflict,) = carried.conflicts
    assert "mine-only" in conflict.mine and "C0MP13X5HUTD0WN" in conflict.theirs and "SHUTDOWN" in conflict.base


def test_an_attribute_removed_on_one_side_and_changed_on_the_other_is_a_conflict() -> None:
    mine = edit(SERVER, (' shutdown="SHUTDOWN"', ""))
    assert carry_file("conf/server.xml", base=SERVER, mine=mine, theirs=HARDENED).outcome is Outcome.CONFLICT


def test_attributes_added_on_both_sides_merge_by_name() -> None:
    base = '<a x="1"/>\n'
    merged = merge(base, '<a x="1" y="2"/>\n', '<a z="3" x="1"/>\n', xml=True)
    assert merged.text == '<a z="3" x="1" y="2"/>\n'


def test_setenv_keeps_the_heap_and_node_name_and_takes_the_new_jvm_flag() -> None:
    mine = edit(SETENV, ("-Xms1024m -Xmx1024m", "-Xms4g -Xmx4g -Dconfluence.cluster.node.name=node1"))
    theirs = edit(SETENV, ("-Dx=1", "-Dx=1 -XX:+ExitOnOutOfMemoryError"))
    carried = carry_file("bin/setenv.sh", base=SETENV, mine=mine, theirs=theirs)
    assert carried.outcome is Outcome.MERGED
    assert "-Xms4g" in (carried.result or "") and "-XX:+ExitOnOutOfMemoryError" in (carried.result or "")


def test_crlf_files_merge_and_keep_their_line_endings() -> None:
    crlf = SETENV.replace("\n", "\r\n")
    mine = edit(crlf, ("-Xmx1024m", "-Xmx2g"))
    theirs = edit(crlf, ("-Dx=1", "-Dx=2"))
    result = carry_file("bin/setenv.sh", base=crlf, mine=mine, theirs=theirs).result or ""
    assert result.count("\r\n") == crlf.count("\r\n") and "\n" not in result.replace("\r\n", "")


@given(st.text(alphabet="<>/=\"' \nabcxyz!-?", max_size=200))
def test_xml_tokens_join_back_to_the_text(text: str) -> None:
    assert "".join(xml_tokens(text)) == text


def test_xml_tokens_split_only_active_tags_into_attributes() -> None:
    tokens = xml_tokens('<!-- <a x="1" y="2"/> -->\n<b x="1" y="2"/>\n')
    assert tokens == ['<!-- <a x="1" y="2"/> -->', "\n", "<b", ' x="1"', ' y="2"', "/>", "\n"]


@pytest.mark.parametrize(
    ("rel", "result", "problem"),
    [
        ("conf/server.xml", SERVER.replace("</Server>", ""), "not well-formed XML"),
        ("conf/server.xml", SERVER.replace('port="8090"', 'port="8091"'), "loses the Connector on 10.0.0.11:8090"),
        ("bin/setenv.sh", SETENV, "loses the node's name (-Dconfluence.cluster.node.name=node1)"),
    ],
)
def test_a_result_that_breaks_the_node_is_caught(rel: str, result: str, problem: str) -> None:
    mine = {
        "conf/server.xml": SERVER.replace('<Connector port="8090"', '<Connector address="10.0.0.11" port="8090"'),
        "bin/setenv.sh": SETENV.replace("-Xmx1024m", "-Xmx1024m -Dconfluence.cluster.node.name=node1"),
    }[rel]
    result = result.replace('<Connector port="8091"', '<Connector address="10.0.0.11" port="8091"')
    assert any(problem in found for found in problems(rel, mine, result)), problems(rel, mine, result)


# --- secrets in carried files, and what the log keeps of them --------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "application.password   hunter2",  # Crowd's own layout: key<blanks>value
        "application.password=hunter2",
        "jdbc.password: hunter2",
        "+application.password  hunter2",  # as a diff shows it
        '<Connector port="8443" keystorePass="hunter2" keyPass=\'hunter2\'/>',
        '<!-- <Connector port="8443" keystorePass="hunter2"/> -->',
        '<property name="hibernate.connection.password">hunter2</property>',
        "<param-name>crowd.secret</param-name>\n  <param-value>hunter2</param-value>",
        "jdbc:mysql://confluence:hunter2@db:3306/confluence",
        "jdbc:oracle:thin:confluence/hunter2@db:1521:orcl",
        "jdbc:sqlserver://db:1433;user=confluence;password=hunter2;databaseName=c",
        "https://admin:hunter2@proxy.example/balancer-manager",
        "ldap.bind.credential=hunter2",
        'CATALINA_OPTS="-Djavax.net.ssl.trustStorePassword=hunter2 ${CATALINA_OPTS}"',
        "API_TOKEN='hunter2'",
        "Secret_Key hunter2",
    ],
)
def test_every_listed_secret_form_is_masked(text: str) -> None:
    masked = mask_secrets(text)
    assert "hunter2" not in masked and "******" in masked


def test_plain_settings_are_not_masked() -> None:
    text = '<Server port="8000" shutdown="C0MP13X5HUTD0WN">\nCATALINA_OPTS="-Xmx2g"\napplication.name  confluence\n'
    assert mask_secrets(text) == text


def test_the_probes_log_keeps_size_and_sha256_never_the_contents() -> None:
    secret = b"application.password hunter2\n"
    stdout = f"@@login_user\ndeploy\n@@file crowd.properties\n{base64.b64encode(secret).decode()}\n@@end\n"
    logged = contents_summarized(CommandResult("node1", "bash -c ...", 0, stdout, "", 0.1))
    assert base64.b64encode(secret).decode()[:8] not in logged.stdout
    assert f"{len(secret)} bytes, sha256 {hashlib.sha256(secret).hexdigest()}" in logged.stdout
    assert "@@file crowd.properties" in logged.stdout and "deploy" in logged.stdout


# --- confluence-init.properties ---------------------------------------------------------------------------------


def test_a_crlf_init_file_changes_by_one_line_and_stays_crlf() -> None:
    stock = "# comment\r\n# confluence.home=d:/confluence/home\r\n"
    written = with_home(stock, "/var/confluence")
    assert written == stock + "confluence.home=/var/confluence\r\n"


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=40))
def test_an_escaped_home_reads_back_as_java_reads_it(home: str) -> None:
    assert read_home(with_home("# stock\n", home)) == home
