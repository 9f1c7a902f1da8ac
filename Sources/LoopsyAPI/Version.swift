public enum LoopsyVersion {
    public static let current = "0.1.0"
    /// The well-known port of the main daemon (sessions use 19533 and up).
    public static let defaultPort: UInt16 = 19532
    public static let apiBase = "/api/v1"
    /// What this build offers peers, as advertised over mDNS and in the handshake.
    public static let capabilities = ["context", "audit", "execute", "transfer", "peers"]
}
