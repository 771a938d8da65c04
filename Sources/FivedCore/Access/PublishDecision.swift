/// The answer to a request to publish a name (see `AccessPolicy.mayPublish`).
/// Whether the name is configured or already published is the registry's
/// question, asked after this one.
public enum PublishDecision: Sendable, Equatable {
    /// The key may publish this name.
    case publish(ServiceName)
    /// The key may not; the reason is for the log.
    case refused(PublishRefusal)
}
