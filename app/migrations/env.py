"""Alembic environment: runs our migrations against the URL `app.db` hands it."""

from alembic import context

from app.db import make_engine
from app.models import Base

config = context.config
url = config.attributes.get("database_url")
if url is None:
    raise SystemExit("run migrations with `flask --app wsgi db upgrade`")

engine = make_engine(url)
try:
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=Base.metadata,
            render_as_batch=connection.dialect.name == "sqlite",  # SQLite cannot ALTER much
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()
finally:
    engine.dispose()
