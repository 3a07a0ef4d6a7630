"""The state store: schema, engine, migrations. The service imports this, never the engine."""
