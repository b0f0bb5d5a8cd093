"""What the notes slice tells the slices above it, as blinker signals. Notes imports none of
them: a slice that wants to know connects a receiver in its own registration, which the
application factory calls (alliance.configure_outbox for the digests' watch alerts)."""
from blinker import Namespace

_signals = Namespace()

note_posted = _signals.signal("note-posted")
"""Sent by post_note in the posting transaction, before it commits: the sender is the new
Note, and `alerts` is False when a bulk import asked for no alerts. A receiver may add to
that transaction (an outbox row, say) and must neither commit nor roll it back."""
