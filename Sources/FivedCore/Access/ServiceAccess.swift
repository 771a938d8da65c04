/// What the access policy needs to know about one configured service.
public struct ServiceAccess: Sendable, Equatable {
    /// The service's name.
    public var name: ServiceName
    /// The service's `allow` list; nil means every authenticated key (subject to
    /// its authorized_keys options), an empty list means nobody.
    public var allow: [AllowRule]?

    /// A service as the configuration declares it.
    public init(name: ServiceName, allow: [AllowRule]?) {
        self.name = name
        self.allow = allow
    }
}
