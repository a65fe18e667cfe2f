//! The one error type of the SIP layer.

use super::peer::TxKey;

/// What went wrong in the SIP layer: bad input from the network, or a call
/// from the application that does not fit the transaction's state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SipError {
    /// A header the operation needs is absent.
    #[error("missing {0} header")]
    MissingHeader(&'static str),
    /// A header is present but does not parse.
    #[error("malformed {0} header")]
    BadHeader(&'static str),
    /// The CSeq method differs from the request method.
    #[error("CSeq method does not match the request method")]
    CSeqMethodMismatch,
    /// No transaction with this key exists (never created, or already ended).
    #[error("no transaction {0:?}")]
    UnknownTransaction(TxKey),
    /// The transaction is a client transaction; it cannot be answered.
    #[error("transaction {0:?} is not a server transaction")]
    NotServerTransaction(TxKey),
    /// A final response was already sent in this transaction.
    #[error("transaction {0:?} already has a final response")]
    AlreadyAnswered(TxKey),
    /// The status code is outside 100..=699.
    #[error("status code {0} is not a valid SIP status code")]
    BadStatusCode(u16),
    /// `send_request` only runs non-INVITE client transactions.
    #[error("{0} cannot be sent in a non-INVITE client transaction")]
    UnsupportedClientMethod(String),
    /// A stream message's headers grew past the size limit without ending.
    #[error("message headers exceed {limit} bytes")]
    HeadersTooLarge {
        /// The configured limit.
        limit: usize,
    },
    /// A stream message (headers + declared body) exceeds the size limit.
    #[error("message of {size} bytes exceeds the limit of {limit} bytes")]
    MessageTooLarge {
        /// Header bytes plus the declared Content-Length.
        size: usize,
        /// The configured limit.
        limit: usize,
    },
    /// A stream message carries a Content-Length that is not a number.
    #[error("invalid Content-Length")]
    BadContentLength,
    /// The request does not belong to this dialog.
    #[error("request does not belong to the dialog")]
    NotInDialog,
    /// The request's CSeq is lower than one already seen in the dialog.
    #[error("CSeq {got} is lower than the last one seen ({last})")]
    CSeqOutOfOrder {
        /// CSeq number of the request.
        got: u32,
        /// Highest CSeq number seen before.
        last: u32,
    },
}
