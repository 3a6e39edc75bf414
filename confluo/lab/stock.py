"""The customizable files of a lab release, as each version ships them.

Stock files change between releases, bug-fix releases included, and the lab's do too, so that an upgrade
must carry the administrator's edits *and* the release's changes:

- from 9.2.9 the Server's shutdown string is `C0MP13X5HUTD0WN` instead of `SHUTDOWN` (Atlassian's real
  security hardening in 9.2.9);
- from 9.2.14 (the lab's own changes, shaped like real ones): a new Connector attribute
  (`maxHttpHeaderSize`), a changed default (the stuck-thread threshold 60 -> 120 s) and a new JVM flag
  in setenv.sh's vendor block (`-XX:+ExitOnOutOfMemoryError`).
"""

from __future__ import annotations

from confluo.lab.node.versions import parse_version

HARDENED_SHUTDOWN = (9, 2, 9)
LAB_CHANGES = (9, 2, 14)

_SETENV_SH = """\
# Environment for Confluence, read at every start.
#
# -----------------------------------------------------------------------------------
# Commonly modified settings. When you upgrade, copy this section onto the new file
# and review the new file's defaults.
# -----------------------------------------------------------------------------------
# A cluster node usually names itself here, for example:
#   CATALINA_OPTS="-Dconfluence.cluster.node.name=node1 ${CATALINA_OPTS}"

CATALINA_OPTS="-Xms1024m -Xmx1024m -XX:+UseG1GC ${CATALINA_OPTS}"
CATALINA_OPTS="-XX:ReservedCodeCacheSize=256m ${CATALINA_OPTS}"
#CATALINA_OPTS="-XX:ReservedCodeCacheSize=384m ${CATALINA_OPTS}"

# -----------------------------------------------------------------------------------
# Settings you should not need to change.
# -----------------------------------------------------------------------------------
CATALINA_OPTS="-XX:+IgnoreUnrecognizedVMOptions ${CATALINA_OPTS}"
CATALINA_OPTS="-Djava.awt.headless=true ${CATALINA_OPTS}"
CATALINA_OPTS="-Datlassian.plugins.enable.wait=300 ${CATALINA_OPTS}"@OOM@

# Options for the lab build: where the JVM would be, Python runs the node.
JRE_HOME="${JRE_HOME:-}"

export CATALINA_OPTS
"""

_SERVER_XML = """\
<?xml version="1.0" encoding="UTF-8"?>
<Server port="8000" shutdown="@SHUTDOWN@" debug="0">
    <Service name="Tomcat-Standalone">
        <!--
        ============================================================================================
        DEFAULT - Direct connector with no proxy: Confluence answers on port 8090 of every address.
        Add address="..." to listen on one address only.
        ============================================================================================
        -->
        <Connector port="8090" connectionTimeout="20000" redirectPort="8443"
                   maxThreads="48" minSpareThreads="10"@HEADER@
                   enableLookups="false" acceptCount="10" debug="0" URIEncoding="UTF-8"
                   protocol="org.apache.coyote.http11.Http11NioProtocol"/>

        <!--
        ============================================================================================
        HTTPS - Direct connector with no proxy, for unproxied HTTPS access to Confluence.
        <Connector port="8443" maxHttpHeaderSize="8192" maxThreads="150" minSpareThreads="25"
                   protocol="org.apache.coyote.http11.Http11NioProtocol" enableLookups="false"
                   disableUploadTimeout="true" acceptCount="100" scheme="https" secure="true"
                   SSLEnabled="true" clientAuth="false" sslEnabledProtocols="TLSv1.2,TLSv1.3"
                   keystoreFile="/path/to/keystore" keystorePass="<MY_CERTIFICATE_PASSWORD>"/>
        ============================================================================================
        -->

        <Engine name="Standalone" defaultHost="localhost" debug="0">
            <Host name="localhost" debug="0" appBase="webapps" unpackWARs="true" autoDeploy="false"
                  startStopThreads="4">
                <Context path="${confluence.context.path}" docBase="../confluence" debug="0"
                         reloadable="false" useHttpOnly="true">
                    <Manager pathname=""/>
                    <Valve className="org.apache.catalina.valves.StuckThreadDetectionValve" threshold="@STUCK@"/>
                </Context>
                <Context path="${confluence.context.path}/synchrony-proxy" docBase="../synchrony-proxy"
                         debug="0" reloadable="false" useHttpOnly="true">
                    <Valve className="org.apache.catalina.valves.StuckThreadDetectionValve" threshold="@STUCK@"/>
                </Context>
            </Host>
        </Engine>
    </Service>
</Server>
"""

SERAPH_CONFIG = """\
<?xml version="1.0" encoding="UTF-8"?>
<security-config>
    <parameters>
        <init-param>
            <param-name>login.url</param-name>
            <param-value>/login.action?os_destination=${originalurl}</param-value>
        </init-param>
        <init-param>
            <param-name>cookie.encoding</param-name>
            <param-value>cNf</param-value>
        </init-param>
    </parameters>
    <!-- Default Confluence authenticator, which uses the configured user management for authentication. -->
    <authenticator class="com.atlassian.confluence.user.ConfluenceAuthenticator"/>
    <!-- Custom authenticators appear below. To enable one of them, comment out the one above. -->
    <!-- <authenticator class="com.atlassian.confluence.user.ConfluenceCrowdSSOAuthenticator"/> -->
</security-config>
"""

CROWD_PROPERTIES = """\
application.name                        confluence
application.password                    password
application.login.url                   http://localhost:8095/crowd/console/
crowd.server.url                        http://localhost:8095/crowd/services/
crowd.base.url                          http://localhost:8095/crowd/
session.isauthenticated                 session.isauthenticated
session.tokenkey                        session.tokenkey
session.validationinterval              2
session.lastvalidation                  session.lastvalidation
"""


def setenv_sh(version: str) -> str:
    new = parse_version(version) >= LAB_CHANGES
    flag = '\nCATALINA_OPTS="-XX:+ExitOnOutOfMemoryError ${CATALINA_OPTS}"'
    return _SETENV_SH.replace("@OOM@", flag if new else "")


def server_xml(version: str) -> str:
    parsed = parse_version(version)
    new = parsed >= LAB_CHANGES
    return (
        _SERVER_XML.replace("@SHUTDOWN@", "C0MP13X5HUTD0WN" if parsed >= HARDENED_SHUTDOWN else "SHUTDOWN")
        .replace("@HEADER@", ' maxHttpHeaderSize="16384"' if new else "")
        .replace("@STUCK@", "120" if new else "60")
    )
