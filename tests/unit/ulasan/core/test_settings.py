"""Shared settings: DSNs carry their password to the driver and nowhere else."""

from __future__ import annotations

import string
from urllib.parse import unquote, urlsplit

from hypothesis import given
from hypothesis import strategies as st

from ulasan.core.settings import REDACTED, PostgresSettings, redact_dsn

SECRETS = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=6, max_size=40
).filter(lambda s: s.strip() == s and "\x00" not in s)
USERS = st.text(alphabet=string.ascii_lowercase + string.digits + "_", min_size=1, max_size=12)


@given(user=USERS, password=SECRETS)
def test_the_dsn_holds_the_password_and_its_redaction_does_not(user: str, password: str) -> None:
    pg = PostgresSettings(user=user, password=password, host="db.internal", port=5432)
    parts = urlsplit(pg.dsn)
    assert unquote(parts.password or "") == password  # the driver gets it back intact
    assert (parts.hostname, parts.port, parts.path) == ("db.internal", 5432, "/ulasan")
    safe = pg.safe_dsn
    assert safe == f"postgresql://{user}:{REDACTED}@db.internal:5432/ulasan"
    message = f"applying migrations to {pg.dsn} failed: boom"
    assert redact_dsn(message) == f"applying migrations to {safe} failed: boom"


@given(password=SECRETS.filter(lambda s: not any(c.isspace() or c in "'\\&#" for c in s)))
def test_keyword_and_query_passwords_are_redacted(password: str) -> None:
    keyword = f"host=db port=5432 user=u password={password} dbname=x"
    assert redact_dsn(keyword) == f"host=db port=5432 user=u password={REDACTED} dbname=x"
    quoted = f"host=db password='{password} x' dbname=x"
    assert redact_dsn(quoted) == f"host=db password={REDACTED} dbname=x"
    query = f"postgresql://db/x?user=u&password={password}&sslmode=require"
    assert redact_dsn(query) == f"postgresql://db/x?user=u&password={REDACTED}&sslmode=require"


def test_a_dsn_without_a_password_is_unchanged() -> None:
    dsn = PostgresSettings().dsn
    assert dsn == "postgresql://ulasan@127.0.0.1:55432/ulasan" == redact_dsn(dsn)
    assert redact_dsn("host=db user=u") == "host=db user=u"
