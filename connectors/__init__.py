"""Channel connectors: one plugin per messaging channel (see ``connectors.base.Connector``)."""
