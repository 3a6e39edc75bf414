"""Port 3, the load balancer: `base` holds the protocol every adapter (HAProxy, nginx, Apache, command) fills."""
