import CAvahi
import Dispatch
import LoopsyAPI
import LoopsyConfig
import LoopsyPOSIX
import LoopsyStore
import Synchronization

/// mDNS through the system's avahi-daemon: publishes `_loopsy._tcp` with this node's TXT record
/// and browses for other nodes, recording them as peers. Without a reachable avahi-daemon it
/// logs one warning and waits for one to appear (AVAHI_CLIENT_NO_FAIL); manual peers keep
/// working meanwhile. Avahi's callbacks run on its own poll thread with its lock held.
public final class Discovery: @unchecked Sendable {
    public static let serviceType = "_loopsy._tcp"

    fileprivate let service: PeerService
    private let monitor: PeerMonitor?
    private let logger: Logger
    private let txt: [String]
    private let port: UInt16
    private let events = DispatchQueue(label: "loopsy.discovery")
    /// discovery.maxUnpairedPeers and friends.
    private let limits: LoopsyConfig.Discovery
    private let capWarned = Atomic<Bool>(false)
    /// Sightings waiting on `events`, at most `maxPendingSightings`: adverts come at whatever
    /// rate a host on the LAN sends them.
    private let pendingSightings = Atomic<Int>(0)
    static let maxPendingSightings = 256
    /// A pinned peer advertised at another address is asked there (up to 5 s) on these threads,
    /// never on `events`: one host advertising a pinned node at dead addresses, again and
    /// again, held every other sighting behind those waits. At most one probe per node and
    /// address each `probeInterval`, for at most `maxProbed` of those at once; past that (or
    /// with the probe threads busy) an advert moves nothing and is looked at when it comes again.
    private let moveProbes = WorkPool(name: "mdns-move-probe", threads: 2, queueLimit: 16)
    private let probedAt = PlainMutex<[String: Double]>([:])
    static let probeInterval = 60.0
    static let maxProbed = 256
    private let queueWarned = Atomic<Bool>(false)
    /// Set at stop: sightings still queued are dropped, not recorded (the stop waits for none).
    private let stopping = Atomic<Bool>(false)

    // Owned by avahi's poll thread (touched elsewhere only under the poll lock, or before start
    // and after stop).
    private var poll: OpaquePointer?
    private var client: OpaquePointer?
    private var group: OpaquePointer?
    private var browser: OpaquePointer?
    private var serviceName: String
    private var warnedUnreachable = false

    public init(service: PeerService, monitor: PeerMonitor?, limits: LoopsyConfig.Discovery, logger: Logger) {
        self.service = service
        self.limits = limits
        self.monitor = monitor
        self.logger = logger
        let local = service.local
        port = UInt16(local.port)
        serviceName = local.hostname
        txt = ["nodeId=\(local.identity.nodeId)", "name=\(local.hostname)", "version=\(LoopsyVersion.current)", "platform=linux",
               "capabilities=\(LoopsyVersion.capabilities.joined(separator: ","))", "tls=\(local.tls ? 1 : 0)"]
    }

    public func start() {
        if let why = cavahi_load_error() {
            logger.warn("mDNS disabled: \(String(cString: why)); peers can still be added with `loopsy peers add`")
            return
        }
        stopping.store(false, ordering: .relaxed)
        guard let poll = cavahi_threaded_poll_new() else {
            logger.warn("mDNS disabled: cannot create the avahi poll loop")
            return
        }
        self.poll = poll
        connect()
        cavahi_threaded_poll_start(poll)
    }

    /// Withdraws the service and stops browsing (the daemon keeps its peers).
    public func stop() {
        guard let poll else { return }
        stopping.store(true, ordering: .relaxed)
        // Retries run on `events` and read `self.poll`: after this, they find nothing to do.
        events.sync { self.poll = nil }
        cavahi_threaded_poll_stop(poll)
        if let client { cavahi_client_free(client) }  // frees its groups, browsers and resolvers
        client = nil
        group = nil
        browser = nil
        cavahi_threaded_poll_free(poll)
    }

    private var context: UnsafeMutableRawPointer { Unmanaged.passUnretained(self).toOpaque() }

    private func connect() {
        guard let poll else { return }
        var error: Int32 = 0
        client = cavahi_client_new(cavahi_threaded_poll_get(poll), AVAHI_CLIENT_NO_FAIL, clientCallback, context, &error)
        guard client == nil else { return }
        // No system bus at all (NO_FAIL only covers a bus without avahi): try again later.
        warnUnreachable(String(cString: cavahi_strerror(error)))
        events.asyncAfter(deadline: .now() + .seconds(10)) { [weak self] in
            guard let self, let poll = self.poll else { return }
            cavahi_threaded_poll_lock(poll)
            if self.client == nil { self.connect() }
            cavahi_threaded_poll_unlock(poll)
        }
    }

    private func warnUnreachable(_ reason: String) {
        guard !warnedUnreachable else { return }
        warnedUnreachable = true
        logger.warn("mDNS: no avahi-daemon is reachable (\(reason)); is it installed and running? Peers can still be "
            + "added with `loopsy peers add`; discovery starts when avahi-daemon does")
    }

    fileprivate func clientChanged(_ client: OpaquePointer, state: AvahiClientState) {
        self.client = client
        switch state {
        case AVAHI_CLIENT_S_RUNNING:
            if warnedUnreachable { logger.info("avahi-daemon is reachable again; mDNS discovery resumed") }
            warnedUnreachable = false
            publish()
            browse()
        case AVAHI_CLIENT_S_COLLISION, AVAHI_CLIENT_S_REGISTERING:
            // The host name is being (re)negotiated: withdraw until running again.
            if let group { cavahi_entry_group_reset(group) }
        case AVAHI_CLIENT_CONNECTING:
            warnUnreachable("avahi-daemon is not on the system bus")
        case AVAHI_CLIENT_FAILURE:
            let error = cavahi_client_errno(client)
            group = nil
            browser = nil
            cavahi_client_free(client)
            self.client = nil
            if error == AVAHI_ERR_DISCONNECTED {
                // avahi-daemon went away: wait for it to come back.
                connect()
            } else {
                logger.warn("mDNS stopped: \(String(cString: cavahi_strerror(error)))")
            }
        default:
            break
        }
    }

    private func publish() {
        guard let client else { return }
        if group == nil { group = cavahi_entry_group_new(client, groupCallback, context) }
        guard let group else {
            logger.warn("mDNS: cannot publish: \(String(cString: cavahi_strerror(cavahi_client_errno(client))))")
            return
        }
        guard cavahi_entry_group_is_empty(group) != 0 else { return }
        var list: UnsafeMutablePointer<AvahiStringList>?
        for entry in txt.reversed() { list = cavahi_string_list_add(list, entry) }
        defer { cavahi_string_list_free(list) }
        let result = cavahi_entry_group_add_service_strlst(
            group, AvahiIfIndex(AVAHI_IF_UNSPEC), AvahiProtocol(AVAHI_PROTO_INET), AvahiPublishFlags(0), serviceName, Self.serviceType, nil, nil,
            port, list)
        if result == AVAHI_ERR_COLLISION {
            renameAfterCollision()
            return
        }
        guard result >= 0, cavahi_entry_group_commit(group) >= 0 else {
            logger.warn("mDNS: cannot publish \(Self.serviceType): \(String(cString: cavahi_strerror(result)))")
            return
        }
    }

    fileprivate func groupChanged(_ group: OpaquePointer, state: AvahiEntryGroupState) {
        switch state {
        case AVAHI_ENTRY_GROUP_ESTABLISHED:
            logger.info("mDNS: published '\(serviceName)' \(Self.serviceType) on port \(port)")
        case AVAHI_ENTRY_GROUP_COLLISION:
            renameAfterCollision()
        case AVAHI_ENTRY_GROUP_FAILURE:
            logger.warn("mDNS: publishing failed: "
                + String(cString: cavahi_strerror(cavahi_client_errno(cavahi_entry_group_get_client(group)))))
        default:
            break
        }
    }

    private func renameAfterCollision() {
        guard let alternative = cavahi_alternative_service_name(serviceName) else { return }
        let next = String(cString: alternative)
        cavahi_free(alternative)
        logger.info("mDNS: service name '\(serviceName)' is taken on this network; using '\(next)'")
        serviceName = next
        if let group { cavahi_entry_group_reset(group) }
        publish()
    }

    private func browse() {
        guard let client, browser == nil else { return }
        browser = cavahi_service_browser_new(client, AvahiIfIndex(AVAHI_IF_UNSPEC), AvahiProtocol(AVAHI_PROTO_INET), Self.serviceType, nil,
                                            AvahiLookupFlags(0), browseCallback, context)
        if browser == nil {
            logger.warn("mDNS: cannot browse: \(String(cString: cavahi_strerror(cavahi_client_errno(client))))")
        }
    }

    fileprivate func browsed(interface: AvahiIfIndex, protocol: AvahiProtocol, event: AvahiBrowserEvent,
                             name: UnsafePointer<CChar>?, type: UnsafePointer<CChar>?, domain: UnsafePointer<CChar>?) {
        guard event == AVAHI_BROWSER_NEW, let client, let name, let type, let domain else { return }
        // Freed in the resolve callback.
        if cavahi_service_resolver_new(client, interface, `protocol`, name, type, domain, AvahiProtocol(AVAHI_PROTO_INET),
                                      AvahiLookupFlags(0), resolveCallback, context) == nil {
            logger.debug("mDNS: cannot resolve \(String(cString: name))")
        }
    }

    fileprivate func resolved(address: String, port: UInt16, txt: [String: String]) {
        guard let nodeId = txt["nodeId"], nodeId != service.local.identity.nodeId,
              nodeId.utf8.count == 32, nodeId.utf8.allSatisfy({ (48...57).contains($0) || (97...102).contains($0) }),
              port > 0 else { return }
        guard Self.isPeerAddress(address) else {
            logger.debug("mDNS: ignoring node \(nodeId) advertised at \(address), which is not another host's address")
            return
        }
        guard pendingSightings.add(1, ordering: .relaxed).newValue <= Self.maxPendingSightings else {
            pendingSightings.subtract(1, ordering: .relaxed)
            // Dropped: a real node announces itself again, and is health-checked where it is known.
            if !queueWarned.exchange(true, ordering: .relaxed) {
                logger.warn("mDNS: \(Self.maxPendingSightings) adverts are waiting to be looked at; dropping more "
                    + "(someone on the network may be flooding it)")
            }
            return
        }
        events.async { [self] in
            defer { pendingSightings.subtract(1, ordering: .relaxed) }
            guard !stopping.load(ordering: .relaxed) else { return }
            // One of this machine's own addresses (docker0's, a VPN's) would reach services the
            // LAN cannot: looked up here, off Avahi's thread, as interfaces come and go.
            guard !NetworkInterfaces.ipv4Addresses().contains(address) else {
                logger.debug("mDNS: ignoring node \(nodeId) advertised at \(address), an address of this machine")
                return
            }
            sighted(nodeId: nodeId, address: address, port: Int(port), txt: txt)
        }
    }

    /// Whether an advert's address may be health-checked, by its text: an IPv4 address that a
    /// handshake would not refuse as local-only (`PeerService.isLocalOnly`: loopback, 0/8,
    /// link-local) and that is not multicast or broadcast. mDNS is unauthenticated: an advert
    /// naming 127.0.0.1 or 0.0.0.0 (which reaches this host too) would have the daemon call
    /// whatever listens on its own loopback, one naming 169.254.169.254 a cloud's metadata
    /// service. Adverts are resolved over IPv4 only. This machine's own addresses are refused
    /// too, in `resolved`.
    static func isPeerAddress(_ address: String) -> Bool {
        guard HostAddress.isIPLiteral(address), !address.contains(":"),
              let first = address.split(separator: ".").first.flatMap({ UInt8($0) }) else { return false }
        return first < 224 && !PeerService.isLocalOnly(address)
    }

    /// Records a node seen on the network. mDNS is unauthenticated, so a sighting never sets a
    /// key or a pin (the first health check fetches and verifies the node's key). It moves a
    /// peer learned over mDNS; a pinned peer moves only once it answered at the new address with
    /// its pinned key (so a spoofed announcement cannot cut it off); other peers stay put.
    private func sighted(nodeId: String, address: String, port: Int, txt: [String: String]) {
        do {
            let existing = try service.store.get(nodeId)
            // Adverts are unauthenticated: a host on the LAN can announce any number of nodes.
            // Those never paired or added are capped, in all and per address, and forgotten
            // once unseen (Daemon's upkeep).
            if existing == nil {
                let unpaired = try service.store.unpairedCount(address: address)
                guard unpaired.all < limits.maxUnpairedPeers, unpaired.atAddress < limits.maxUnpairedPerAddress else {
                    if !capWarned.exchange(true, ordering: .relaxed) {
                        logger.warn("mDNS: ignoring node \(nodeId) at \(address): \(unpaired.all) unpaired peers known "
                            + "(\(unpaired.atAddress) at that address); see discovery.maxUnpairedPeers and "
                            + "discovery.maxUnpairedPerAddress")
                    }
                    return
                }
            }
            var movable = existing == nil || existing?.info.source == .mdns
            // An unpaired peer moving to another address counts against that address's cap too.
            var capped = false
            if let existing, existing.info.source == .mdns, existing.info.address != address,
               existing.apiKey == nil, try service.store.unpairedCount(address: address).atAddress
                >= limits.maxUnpairedPerAddress {
                movable = false
                capped = true
            }
            // A pinned peer moves only once it answers there with its pinned key: asked apart.
            var probe = false
            if let existing, existing.info.fingerprint != nil,
               existing.info.address != address || existing.info.port != port {
                movable = false
                probe = !capped
            }
            let capabilities = (txt["capabilities"] ?? "").split(separator: ",").map(String.init)
            let sighting = PeerSighting(
                nodeId: nodeId, name: existing?.info.name ?? txt["name"] ?? address, address: address, port: port,
                platform: txt["platform"] ?? "", version: txt["version"] ?? "", capabilities: capabilities,
                publicKey: nil, fingerprint: nil, tls: txt["tls"] == "1", source: .mdns)
            let record = try service.store.upsert(sighting, moveAddress: movable)
            if probe, let existing { probeMove(existing, to: sighting) }
            if existing == nil {
                logger.info("mDNS: found node \(nodeId) at \(address):\(port)")
            } else if existing?.info.address != record.info.address || existing?.info.port != record.info.port {
                logger.info("mDNS: peer \(record.info.name) (\(nodeId)) moved to \(address):\(port)")
            }
            monitor?.wake()
        } catch {
            logger.warn("mDNS: cannot record node \(nodeId): \(error)")
        }
    }
}

extension Discovery {
    /// Asks, off `events`, whether the pinned peer `record` answers with its key where
    /// `sighting` says it is, and moves it there if so. Skipped when that node was asked at that
    /// address less than `probeInterval` ago, and when the probe threads are busy.
    fileprivate func probeMove(_ record: PeerRecord, to sighting: PeerSighting, now: Double = Clock.monotonicSeconds()) {
        let key = "\(record.nodeId) \(sighting.address) \(sighting.port)"
        let due = probedAt.withLock { probed -> Bool in
            if let last = probed[key], now - last < Self.probeInterval { return false }
            if probed.count >= Self.maxProbed { probed = probed.filter { now - $0.value < Self.probeInterval } }
            return probed.count < Self.maxProbed
        }
        guard due else { return }
        let submitted = moveProbes.submit { [self] in
            guard !stopping.load(ordering: .relaxed),
                  answersWithPinnedKey(record, address: sighting.address, port: sighting.port),
                  !stopping.load(ordering: .relaxed) else { return }
            do {
                // Only the peer as it was asked about: not one removed meanwhile (nothing is
                // recreated), nor one paired again with another key; its name as it is now.
                guard let current = try service.store.get(record.nodeId),
                      current.info.fingerprint == record.info.fingerprint else { return }
                var moved = sighting
                moved.name = current.info.name
                guard try service.store.update(moved) != nil else { return }
                logger.info("mDNS: peer \(current.info.name) (\(record.nodeId)) moved to \(sighting.address):\(sighting.port)")
                monitor?.wake()
            } catch {
                logger.warn("mDNS: cannot record node \(record.nodeId): \(error)")
            }
        }
        // Counted only once it is under way: a probe the busy threads refused is tried again
        // the next time the advert comes.
        if submitted { probedAt.withLock { $0[key] = now } }
    }

    /// Does the pinned peer answer at this other address, with its own key?
    fileprivate func answersWithPinnedKey(_ record: PeerRecord, address: String, port: Int) -> Bool {
        var moved = record
        moved.info.address = address
        moved.info.port = port
        guard let client = try? service.client(for: moved, timeoutSeconds: 5, authenticated: false),
              let health = try? client.health() else { return false }
        return health.nodeId == record.nodeId
    }
}

private func discovery(_ userdata: UnsafeMutableRawPointer?) -> Discovery? {
    userdata.map { Unmanaged<Discovery>.fromOpaque($0).takeUnretainedValue() }
}

private let clientCallback: AvahiClientCallback = { client, state, userdata in
    guard let client else { return }
    discovery(userdata)?.clientChanged(client, state: state)
}

private let groupCallback: AvahiEntryGroupCallback = { group, state, userdata in
    guard let group else { return }
    discovery(userdata)?.groupChanged(group, state: state)
}

private let browseCallback: AvahiServiceBrowserCallback = { _, interface, proto, event, name, type, domain, _, userdata in
    discovery(userdata)?.browsed(interface: interface, protocol: proto, event: event, name: name, type: type,
                                 domain: domain)
}

private let resolveCallback: AvahiServiceResolverCallback = {
    resolver, _, _, event, _, _, _, _, address, port, txt, _, userdata in
    defer { cavahi_service_resolver_free(resolver) }
    guard event == AVAHI_RESOLVER_FOUND, let address, let discovery = discovery(userdata) else { return }
    var buffer = [CChar](repeating: 0, count: Int(AVAHI_ADDRESS_STR_MAX))
    cavahi_address_snprint(&buffer, buffer.count, address)
    var entries: [String: String] = [:]
    var item = txt
    while let current = item {
        let size = Int(cavahi_string_list_get_size(current))
        if let text = cavahi_string_list_get_text(current), size <= 255 {
            let entry = String(decoding: UnsafeBufferPointer(start: text, count: size), as: UTF8.self)
            if let equals = entry.firstIndex(of: "=") {
                entries[String(entry[..<equals])] = String(entry[entry.index(after: equals)...])
            }
        }
        item = cavahi_string_list_get_next(current)
    }
    discovery.resolved(address: String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self),
                       port: port, txt: entries)
}
