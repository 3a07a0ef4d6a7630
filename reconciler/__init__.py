"""The reconcile engine: load -> validate -> read state -> diff -> plan -> render | apply."""
