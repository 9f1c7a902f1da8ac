#if canImport(Glibc)
import Glibc
#endif

/// The system's account database (getpwnam_r).
public enum Account {
    /// The login shell of `user` (a name, or a numeric uid as su takes it), nil when there is
    /// no such account or it names none. The entry's strings live in the buffer: read while it
    /// is held, and a buffer too small for them is doubled.
    public static func loginShell(of user: String) -> String? {
        guard !user.utf8.contains(0) else { return nil }
        var size = 4096
        while size <= 1 << 20 {
            var status: Int32 = 0
            let shell = withUnsafeTemporaryAllocation(of: CChar.self, capacity: size) { buffer -> String?? in
                var entry = passwd()
                var found: UnsafeMutablePointer<passwd>?
                guard let base = buffer.baseAddress else { return .some(nil) }
                status = getpwnam_r(user, &entry, base, buffer.count, &found)
                if status == 0 && found == nil, let uid = UInt32(user) {
                    status = getpwuid_r(uid, &entry, base, buffer.count, &found)
                }
                guard status == 0 else { return nil }
                guard found != nil, let shell = entry.pw_shell else { return .some(nil) }
                let text = String(cString: shell)
                return .some(text.isEmpty ? "/bin/sh" : text)  // passwd(5): an empty shell is /bin/sh
            }
            if let shell { return shell }
            guard status == ERANGE else { return nil }
            size *= 2
        }
        return nil
    }
}
