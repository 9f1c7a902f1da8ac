import LoopsyPOSIX
#if canImport(Glibc)
import Glibc
#endif

/// A process's descendants as /proc shows them (`/proc/<pid>/task/<tid>/children`), found by
/// parentage rather than process group or session: a descendant that called setsid() is still
/// found while its parent lives.
enum ProcessTree {
    /// Direct children of `pid`, from every thread of it.
    static func children(of pid: pid_t) -> [pid_t] {
        var result: [pid_t] = []
        for name in Directory.names("/proc/\(pid)/task") {
            guard let tid = Int32(name) else { continue }
            let text = readSmallFile("/proc/\(pid)/task/\(tid)/children") ?? ""
            result += text.split(separator: " ").compactMap { pid_t($0.trimming()) }
        }
        return result
    }

    /// Every descendant of `roots` (not the roots themselves), parents before children.
    static func descendants(of roots: [pid_t]) -> [pid_t] {
        var seen = Set(roots)
        var order: [pid_t] = []
        var queue = roots
        while let next = queue.popLast() {
            for child in children(of: next) where seen.insert(child).inserted {
                order.append(child)
                queue.append(child)
            }
        }
        return order
    }

    /// The state letter, process group, session and start time (clock ticks after boot: with the
    /// pid, an identity no later process shares) of `pid`, from /proc/<pid>/stat.
    static func status(_ pid: pid_t) -> (state: UInt8, group: pid_t, session: pid_t, started: UInt64)? {
        guard let text = readSmallFile("/proc/\(pid)/stat"), let close = text.utf8.lastIndex(of: UInt8(ascii: ")")) else {
            return nil
        }
        // After "(comm)": state(3) ppid(4) pgrp(5) session(6) … starttime(22)
        let fields = text[text.index(after: close)...].split(separator: " ")
        guard fields.count >= 20, let state = fields[0].utf8.first, let group = pid_t(fields[2]),
              let session = pid_t(fields[3]), let started = UInt64(fields[19]) else { return nil }
        return (state, group, session, started)
    }

    /// Every descendant of `root` with its start time.
    static func identities(below root: pid_t) -> [pid_t: UInt64] {
        var result: [pid_t: UInt64] = [:]
        for pid in descendants(of: [root]) {
            if let started = status(pid)?.started { result[pid] = started }
        }
        return result
    }

    /// Sends `signal` to each descendant of `root` that is outside the process group `group`
    /// (the group itself is signalled with kill(-group) by the caller): descendants that left
    /// the group with setsid() or setpgid() get it too.
    static func signalDescendants(of root: pid_t, outsideGroup group: pid_t, _ signal: Int32) {
        for pid in descendants(of: [root]) where status(pid)?.group != group {
            kill(pid, signal)
        }
    }

    /// Kills `roots` (when `includingRoots`) and all their descendants without giving any of
    /// them a chance to fork away: every process found is stopped (SIGSTOP) first, the tree is
    /// walked again until no new process appears, then everything found gets SIGKILL.
    static func freezeAndKill(_ roots: [pid_t], includingRoots: Bool) {
        guard !roots.isEmpty else { return }
        var frozen: [pid_t] = []
        var seen = Set<pid_t>()
        if includingRoots {
            for root in roots where seen.insert(root).inserted {
                kill(root, SIGSTOP)
                frozen.append(root)
            }
        }
        for _ in 0..<64 {
            let found = descendants(of: roots).filter { !seen.contains($0) }
            if found.isEmpty { break }
            for pid in found {
                seen.insert(pid)
                kill(pid, SIGSTOP)
                frozen.append(pid)
            }
        }
        for pid in frozen { kill(pid, SIGKILL) }
    }

    static func readSmallFile(_ path: String) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        let bytes = (try? FileIO.readAll(fd, limit: 1 << 20)) ?? []
        return String(decoding: bytes, as: UTF8.self)
    }
}
