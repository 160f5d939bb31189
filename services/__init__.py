"""Framework-free domain code of the Watheeq communication module."""
