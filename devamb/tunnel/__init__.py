"""SSH bastions: targets reached through a shared SSH connection's direct-tcpip channels."""
