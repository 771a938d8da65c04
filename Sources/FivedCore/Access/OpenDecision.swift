/// The answer to one channel open (see `AccessPolicy.decide`).
public enum OpenDecision: Sendable, Equatable {
    /// Connect the channel to this service (after any forced command and case folding).
    case open(ServiceName)
    /// Answer with the list of services the caller may open (`help`, or a shell
    /// without a forced command).
    case help
    /// Answer with the built-in status table.
    case status
    /// Refuse the channel. The client is always told `AccessPolicy.refusalText`,
    /// whatever the reason, so that it cannot probe which names exist; the
    /// reason is for the log.
    case refused(OpenRefusal)
}
