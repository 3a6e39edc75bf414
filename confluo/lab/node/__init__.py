"""The lab's node program: a stand-in for one Confluence Data Center node.

Shipped inside every lab archive as the zipapp ``lib/confluence-node.pyz`` (built by ``confluo.lab.tarball``)
and started by ``bin/start-confluence.sh`` as ``python3 lib/confluence-node.pyz --install <install_dir>``.

Standard library only: a node host has nothing but python3. Inside the package every import of a sibling is
relative, because in the archive the package is a top-level one (``confluence_node``), not ``confluo.lab.node``.
"""
