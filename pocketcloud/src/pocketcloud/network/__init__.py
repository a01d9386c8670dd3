"""The network service: networks and fixed IPs, laid out by FlatManager or VlanManager."""

__all__: list[str] = []
