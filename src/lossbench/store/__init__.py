"""Results store (SQLAlchemy Core); importing it never imports torch."""
