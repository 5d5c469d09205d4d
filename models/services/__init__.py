"""The domain layer: every rule and every write of clients and mailings.

Functions here take plain values (ids, the dataclasses below, datetimes),
never API input types, so the GraphQL resolvers, the CLI, the Huey jobs and
the tests all call the same code. A function that changes a mailing takes a
``wake`` (see :class:`Wake`) and calls it after its transaction committed.
"""

from models.services.clients import (
    ClientChanges,
    ClientFields,
    create_client,
    delete_client,
    import_clients,
    phone_taken,
    update_client,
)
from models.services.mailing_status import (
    ATTEMPTS,
    Wake,
    cancel_mailing,
    compare_and_set,
    delete_mailing,
    live_mailing,
    pause_mailing,
    resume_mailing,
)
from models.services.mailings import (
    MailingChanges,
    MailingFields,
    check_period,
    create_mailing,
    live_mailings,
    update_mailing,
)
from models.services.opt_outs import OptOutOutcome, opt_in_client, opt_out_phones

__all__ = [
    "ATTEMPTS",
    "ClientChanges",
    "ClientFields",
    "MailingChanges",
    "MailingFields",
    "OptOutOutcome",
    "Wake",
    "cancel_mailing",
    "check_period",
    "compare_and_set",
    "create_client",
    "create_mailing",
    "delete_client",
    "delete_mailing",
    "import_clients",
    "live_mailing",
    "live_mailings",
    "opt_in_client",
    "opt_out_phones",
    "pause_mailing",
    "phone_taken",
    "resume_mailing",
    "update_client",
    "update_mailing",
]
