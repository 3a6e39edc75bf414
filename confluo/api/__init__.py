"""Port 2: Confluence over HTTP. `base` holds the values and the protocol, `zdu` the httpx client."""
