"""One spelling per wallet: the canonical form, what is refused, and — as properties over generated
addresses and spellings — that two spellings of one address get the same features (offline and online)
and the same list verdicts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest
from eth_utils import to_checksum_address
from hypothesis import given, settings
from hypothesis import strategies as st

from ticketguard.features.offline import OfflineFeatures
from ticketguard.features.online import HistoryFeatureSource, OnlineFeatures
from ticketguard.features.repository import TransactionFacts
from ticketguard.features.specs import FeatureParams
from ticketguard.features.state import EventFacts, FeatureState
from ticketguard.history import EVENT_COLUMNS, LABEL_COLUMNS, TRANSACTION_COLUMNS, History, conform
from ticketguard.scoring.online import WalletLists, row_of
from ticketguard.scoring.service import ScoreRequest
from ticketguard.security.lists import ListError, normalize_wallet
from ticketguard.wallets import WalletError, canonical_wallet, is_canonical, wallet_key

GUIDE_SAMPLE = "0x742d35Cc6634C0532925a3b844Bc9e7595f0bEb"  # 39 digits, mixed case
GUIDE_CANONICAL = "0x0742d35cc6634c0532925a3b844bc9e7595f0beb"


# ------------------------------------------------------------------------------------------ examples
@pytest.mark.parametrize(
    ("spelling", "canonical"),
    [
        (GUIDE_SAMPLE, GUIDE_CANONICAL),  # no checksum over 39 digits: accepted, padded, lower-cased
        (GUIDE_CANONICAL, GUIDE_CANONICAL),
        (to_checksum_address(GUIDE_CANONICAL), GUIDE_CANONICAL),
        ("0xdeadbeef", "0x" + "0" * 32 + "deadbeef"),
        ("0XDEADBEEF", "0x" + "0" * 32 + "deadbeef"),
        ("0x" + "0" * 32 + "DEADBEEF", "0x" + "0" * 32 + "deadbeef"),  # all upper: no checksum to check
        ("0x0", "0x" + "0" * 40),
        ("0x" + "F" * 40, "0x" + "f" * 40),
    ],
)
def test_spellings_have_one_canonical_form(spelling: str, canonical: str) -> None:
    assert canonical_wallet(spelling) == canonical
    assert is_canonical(canonical)
    assert canonical_wallet(canonical) is canonical  # the fast path returns its input


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("0x", "1-40 hex digits"),
        ("0x" + "a" * 41, "1-40 hex digits"),
        ("0xabcg", "1-40 hex digits"),
        ("deadbeef", "1-40 hex digits"),
        (" 0xdeadbeef", "1-40 hex digits"),
        ("0x0742d35Cc6634C0532925a3b844Bc9e7595f0bEb", "EIP-55"),  # the probe's padded spelling: bad checksum
        ("0x00000000000000000000000000000000DeadBeef", "EIP-55"),  # the probe's second one: bad checksum
        ("0x" + "aB" * 20, "EIP-55"),
    ],
)
def test_refused_spellings_say_what_is_accepted(value: str, message: str) -> None:
    with pytest.raises(WalletError, match=message):
        canonical_wallet(value)


def test_a_correct_checksum_is_accepted_and_a_single_flipped_letter_refused() -> None:
    checksummed = to_checksum_address("0x" + "ab" * 20)
    assert canonical_wallet(checksummed) == "0x" + "ab" * 20
    i = next(i for i, ch in enumerate(checksummed) if i > 1 and ch.isalpha())
    flipped = checksummed[:i] + checksummed[i].swapcase() + checksummed[i + 1 :]
    with pytest.raises(WalletError, match="EIP-55"):
        canonical_wallet(flipped)


def test_values_that_are_not_addresses_keep_their_own_key() -> None:
    assert wallet_key("erased:0123456789abcdef0123456789abcdef01234") == (
        "erased:0123456789abcdef0123456789abcdef01234"
    )
    assert wallet_key("0xDEADBEEF") == "0x" + "0" * 32 + "deadbeef"


def test_list_keys_are_canonical_and_errors_are_list_errors() -> None:
    assert normalize_wallet("  0xDeadBeef\n") == "0x" + "0" * 32 + "deadbeef"
    with pytest.raises(ListError, match="EIP-55"):
        normalize_wallet("0x" + "aB" * 20)


# ------------------------------------------------------------------------------------------ properties
# Addresses as numbers: many with leading zero digits (the spellings that differ by padding).
addresses = st.one_of(
    st.integers(0, 2**32),
    st.integers(0, 2**96),
    st.integers(0, 2**160 - 1),
).map(lambda n: "0x" + format(n, "040x"))


@st.composite
def spelling_of(draw: st.DrawFn, canonical: str) -> str:
    """Any accepted spelling of ``canonical``: padded or not, lower/upper case, checksummed, 0x or 0X."""
    digits = canonical[2:]
    zeros = len(digits) - len(digits.lstrip("0"))
    keep_from = draw(st.integers(0, min(zeros, 39)))  # strip some leading zeros, keep >= 1 digit
    short = digits[keep_from:]
    style = draw(st.sampled_from(["lower", "upper", "checksum", "random_case"]))
    if style == "upper":
        body = short.upper()
    elif style == "checksum" or (style == "random_case" and len(short) == 40):
        body = to_checksum_address(canonical)[2:][keep_from:] if keep_from == 0 else short
    elif style == "random_case":  # shorter than 40 digits: no checksum exists, any case is accepted
        flips = draw(st.lists(st.booleans(), min_size=len(short), max_size=len(short)))
        body = "".join(c.upper() if f else c for c, f in zip(short, flips, strict=True))
    else:
        body = short
    return draw(st.sampled_from(["0x", "0X"])) + body


@st.composite
def address_and_two_spellings(draw: st.DrawFn) -> tuple[str, str, str]:
    canonical = draw(addresses)
    return canonical, draw(spelling_of(canonical)), draw(spelling_of(canonical))


@settings(max_examples=300, deadline=None)
@given(address_and_two_spellings(), addresses)
def test_every_spelling_of_an_address_is_the_same_wallet_and_no_other(
    spellings: tuple[str, str, str], other: str
) -> None:
    canonical, a, b = spellings
    assert canonical_wallet(a) == canonical_wallet(b) == canonical
    assert normalize_wallet(a) == normalize_wallet(b) == canonical
    if other != canonical:
        assert canonical_wallet(other) != canonical


T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
PARAMS = FeatureParams(label_delay=timedelta(hours=1), risk_window=timedelta(hours=48))
OTHER = "0x" + "c" * 40


def _history(buyer: str, seller: str) -> History:
    """Two days of a wallet's trades, stored under the spellings given (an import of old data might hold
    any): purchases, a resale to it from ``seller``, and an unrelated wallet."""
    rows = []
    for i, (hours, wallet, sell, ip, pm) in enumerate(
        [
            (-40, buyer, None, "1.1.1.1", "card"),
            (-20, buyer, None, "2.2.2.2", "wallet"),
            (-3, buyer, seller, "1.1.1.1", "card"),
            (-2, OTHER, None, "1.1.1.1", "card"),
            (-0.5, seller, None, "3.3.3.3", "card"),
        ]
    ):
        rows.append(
            {
                "transaction_id": f"h{i}",
                "wallet_address": wallet,
                "event_id": "E1",
                "ticket_id": f"E1-{i}",
                "price_paid": 40.0 + i,
                "payment_method": pm,
                "is_resale": sell is not None,
                "status": "completed",
                "timestamp": T0 + timedelta(hours=hours),
                "seller_address": sell,
                "ip_address": ip,
                "country": None,
                "latitude": None,
                "longitude": None,
                "source": "import",
            }
        )
    events = pd.DataFrame(
        [
            {
                "event_id": "E1",
                "name": "E1",
                "organizer_id": "o",
                "capacity": 100,
                "face_value": 50.0,
                "on_sale_at": T0 - timedelta(days=10),
                "starts_at": T0 + timedelta(days=10),
            }
        ]
    )
    return History(
        transactions=conform(pd.DataFrame(rows), TRANSACTION_COLUMNS),
        events=conform(events, EVENT_COLUMNS),
        labels=conform(pd.DataFrame(columns=list(LABEL_COLUMNS)), LABEL_COLUMNS),
    )


def _request(wallet: str, seller: str) -> ScoreRequest:
    return ScoreRequest(
        transaction_id="q1",
        wallet_address=wallet,
        seller_address=seller,
        is_resale=True,
        price_paid=Decimal("55"),
        ticket_id="E1-9",
        event_id="E1",
        payment_method="card",
        ip_address="1.1.1.1",
    )


def _facts(wallet: str, seller: str) -> TransactionFacts:
    """The features' own view of a request, built from the spellings as given (not via ScoreRequest)."""
    return TransactionFacts(
        transaction_id="q1",
        wallet_address=wallet,
        event_id="E1",
        timestamp=T0,
        price_paid=Decimal("55"),
        ticket_id="E1-9",
        payment_method="card",
        is_resale=True,
        seller_address=seller,
        ip_address="1.1.1.1",
    )


@settings(max_examples=40, deadline=None)
@given(address_and_two_spellings(), address_and_two_spellings())
def test_two_spellings_get_the_same_features_and_list_verdicts(
    buyer: tuple[str, str, str], seller: tuple[str, str, str]
) -> None:
    buyer_canonical, b1, b2 = buyer
    seller_canonical, s1, s2 = seller
    if buyer_canonical == seller_canonical or OTHER in (buyer_canonical, seller_canonical):
        return
    # The history holds the first spellings; the two requests use the second and third.
    history = _history(b1, s1)
    blacklist = pd.DataFrame(
        {"wallet_address": [s1], "timestamp": [T0 - timedelta(days=1)], "expires_at": [pd.NaT]}
    )
    first, second = _request(b1, s1), _request(b2, s2)
    assert first.wallet_address == second.wallet_address == buyer_canonical
    assert first.seller_address == second.seller_address == seller_canonical

    # Online: the features a scoring request gets.
    online = OnlineFeatures(HistoryFeatureSource(history, PARAMS, blacklist=blacklist), PARAMS)
    f1, f2 = online.compute(_facts(b2, s2)), online.compute(_facts(b1, s1))
    assert f1 == f2
    assert f1["txn_velocity_24h"] == 2  # the two purchases of the last day count under any spelling
    assert f1["counterparty_blacklisted"] == 1
    assert f1["repeat_pair_count"] == 1

    # The API workers' in-memory state (`features.state`), loaded as from the database (canonical rows):
    # requests in other spellings find the wallet's history there.
    state = FeatureState(PARAMS)
    for record in _history(buyer_canonical, seller_canonical).transactions.to_dict("records"):
        record["timestamp"] = record["timestamp"].to_pydatetime()
        record = {k: (None if v is None or v != v else v) for k, v in record.items()}
        state.add(row_of(record))
    state.set_events({"E1": EventFacts(100.0, 50.0, (T0 + timedelta(days=10)).timestamp())})
    state.set_blacklist({seller_canonical: [(0, None)]})
    m1, m2 = state.primitives(_facts(b1, s1)), state.primitives(_facts(b2, s2))
    assert m1 == m2 == state.primitives(_facts(buyer_canonical, seller_canonical))
    assert m1 != state.primitives(_facts(OTHER, seller_canonical))

    # Offline: the same query rows spelled differently, against the same history.
    queries = conform(
        pd.DataFrame(
            [
                {**history.transactions.iloc[2].to_dict(), "transaction_id": "x1", "wallet_address": b2},
                {**history.transactions.iloc[2].to_dict(), "transaction_id": "x2", "seller_address": s2},
            ]
        ),
        TRANSACTION_COLUMNS,
    )
    offline = OfflineFeatures(PARAMS).compute(history, queries, blacklist=blacklist)
    reference = OfflineFeatures(PARAMS).compute(history, blacklist=blacklist).iloc[2]
    for i in range(2):
        np.testing.assert_array_equal(offline.iloc[i].to_numpy(), reference.to_numpy())

    # List verdicts: an entry made under one spelling holds for the others (the in-memory lists key by
    # the canonical form the list functions store).
    lists = WalletLists({normalize_wallet(b1): [(0, None)]}, {normalize_wallet(s2): [(0, None)]})
    assert lists.status(first.wallet_address, 1).blocked
    assert lists.status(second.wallet_address, 1).blocked
    assert lists.status(_request(s1, b1).wallet_address, 1).allowlisted
