import LoopsyPOSIX
import LoopsyAPI
import LoopsyConfig
#if canImport(Glibc)
import Glibc
#endif

/// Who asks for a transfer: the node's owner, or another caller (an `auth.allowedKeys` key, a
/// peer) who gets less: no dotfiles that run code, no files with other hard links.
public struct TransferAccess: Sendable {
    /// The node's own key (or its dashboard).
    public var owner: Bool
    /// When set, the caller's own allowed paths: a path must lie inside one of these as well as
    /// inside `transfer.allowedPaths`.
    public var roots: [String]?

    public init(owner: Bool, roots: [String]? = nil) {
        self.owner = owner
        self.roots = roots
    }
}

/// Where transfers may read and write: one set of rules for push, pull, checksum and list.
///
/// Names are checked only to give early, clear refusals; the decision is made on what is
/// opened. A path is resolved from a descriptor of the allowed root that contains it (lexically)
/// with openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS), so no symlink, `..` in a link or
/// rename race can lead outside that root; then the opened descriptor's real path
/// (/proc/self/fd) is checked against the denied paths on whole components. A symlink that
/// leaves the root is followed by rewriting the path through it and starting again from the
/// root that contains the new path (so a link to another allowed place still works, one to
/// anywhere else is refused by the same rules). Without openat2 (ENOSYS) the path is walked one
/// component at a time with O_NOFOLLOW, and every symlink is followed by that rewriting.
///
/// Denied, whatever the configuration says:
/// - the node's data dir (`LOOPSY_DATA_DIR`, --data-dir), the main data dir it belongs to, the
///   sessions under it (`<main>/sessions/*`) and `~/.loopsy`: the owner key (config.yaml), the
///   identity key (identity.pem), TLS keys (tls/), the database and the logs;
/// - `transfer.deniedPaths`;
/// - for callers other than the owner, the dotfiles of `codeDotfiles` (they run code or hold
///   credentials) unless `transfer.allowedDotfiles` lists them, and files with more than one hard
///   link (another name of the same bytes may be a denied file).
public struct PathPolicy: Sendable {
    /// An allowed root: as configured (tilde expanded) and its real location.
    struct Root: Sendable {
        var configured: String
        var real: String
    }

    let allowed: [Root]
    /// `transfer.deniedPaths`, as configured and real.
    let denied: [String]
    /// Data dirs: always denied.
    let protected: [String]
    /// Dotfiles that run code or hold credentials: denied to callers other than the owner.
    let dotfiles: [String]
    /// `transfer.allowedDotfiles`.
    let allowedDotfiles: [String]

    /// Home-relative dotfiles and directories whose contents run as the user (shell start-up
    /// files, session and service definitions, git's hooks and fsmonitor, PATH directories,
    /// agent settings with hooks) or hold credentials (SSH, GnuPG, package registry tokens,
    /// cloud and container logins). A peer that may write one of these could run code as the
    /// user at the next login; one that may read them gets the user's secrets.
    static let codeDotfiles = [
        // Shells
        ".bashrc", ".bash_profile", ".bash_login", ".bash_logout", ".profile", ".bash_aliases",
        ".zshrc", ".zprofile", ".zshenv", ".zlogin", ".zlogout", ".login", ".logout", ".cshrc", ".tcshrc",
        ".kshrc", ".mkshrc", ".inputrc", ".config/fish", ".config/nushell", ".config/zsh", ".oh-my-zsh",
        // Sessions, services, autostart
        ".pam_environment", ".xprofile", ".xsession", ".xsessionrc", ".xinitrc", ".Xresources",
        ".config/systemd", ".config/autostart", ".config/environment.d", ".config/plasma-workspace",
        ".local/share/systemd", ".config/upstart", ".config/user-dirs.dirs",
        // Programs on PATH, editors and tools that load code from their config
        ".local/bin", "bin", ".vimrc", ".vim", ".config/nvim", ".emacs", ".emacs.d", ".config/emacs",
        ".gitconfig", ".config/git", ".git-credentials", ".hgrc", ".ssh", ".gnupg", ".pki",
        ".npmrc", ".yarnrc", ".pypirc", ".pip", ".config/pip", ".cargo/config", ".cargo/config.toml",
        ".cargo/credentials", ".cargo/credentials.toml", ".docker", ".kube", ".aws", ".azure",
        ".config/gcloud", ".netrc", ".config/gh", ".terraformrc", ".m2/settings.xml", ".gradle/gradle.properties",
        ".claude", ".claude.json", ".config/claude", ".codex", ".cursor", ".mcp.json",
        ".config/Code/User", ".vscode", ".mozilla", ".config/google-chrome", ".config/chromium",
        ".password-store", ".local/share/keyrings", ".config/loopsy",
    ]

    /// Names that run code wherever they are, not only in the home directory: a repository's
    /// `.git` (hooks, `core.fsmonitor` and other config that git runs when it runs there: an
    /// allowlisted `git status` ran what a peer had pushed into .git/config), a project's
    /// agent and editor settings (`.claude`, `.mcp.json`, `.cursor`, `.codex`, `.vscode`: hooks
    /// and MCP servers a session started there loads), `.hg` and direnv's `.envrc`.
    static let codeNamesAnywhere = [".git", ".hg", ".claude", ".mcp.json", ".cursor", ".codex", ".vscode", ".envrc"]

    public init(config: LoopsyConfig.Transfer, dataDir: DataDir?, environment: [String: String]) {
        let home = DataDir.homeDirectory(environment: environment)
        func expand(_ path: String) -> String {
            let expanded = DataDir.expandTilde(path, environment: environment)
            return Self.lexical(KernelPath.isAbsolute(expanded) ? expanded : home + "/" + expanded)
        }
        func both(_ path: String) -> [String] {
            let configured = expand(path)
            let real = Self.canonical(configured)
            return KernelPath.same(real, configured) ? [configured] : [configured, real]
        }
        allowed = config.allowedPaths.map { path in
            let configured = expand(path)
            return Root(configured: configured, real: Self.canonical(configured))
        }
        denied = config.deniedPaths.flatMap(both)
        var dataDirs = [home + "/.loopsy"]
        if let dataDir {
            let main = SessionDirectory.mainDataDir(for: dataDir)
            dataDirs += [dataDir.root, main.root, SessionDirectory(main: main).root]
        }
        protected = dataDirs.flatMap(both)
        dotfiles = Self.codeDotfiles.flatMap { both(home + "/" + $0) }
        allowedDotfiles = config.allowedDotfiles.flatMap(both)
    }

    enum Access { case read, write }

    // MARK: Rules on names

    /// The asked path's components: absolute, without NUL or `..`; `.` and empty ones dropped.
    /// Split and compared as bytes, as the kernel will read them (see KernelPath).
    func components(_ path: String) throws -> [Substring] {
        guard KernelPath.isAbsolute(path) else {
            throw APIError.badRequest("'\(path)' is not an absolute path", code: .badPath)
        }
        guard !path.utf8.contains(0) else { throw APIError.badRequest("the path contains a NUL byte", code: .badPath) }
        let components = KernelPath.names(path).filter { !KernelPath.same($0, ".") }
        guard !components.contains(where: { KernelPath.same($0, "..") }) else {
            throw APIError.forbidden("'\(path)' contains '..'; give the path without it", code: .pathForbidden)
        }
        return components
    }

    /// The refusal for `path` (a real or lexical absolute path), if a denial rule covers it.
    func refusal(_ path: String, asked: String, access: TransferAccess) -> APIError? {
        if let rule = protected.first(where: { Self.isInside(path, $0) }) {
            return APIError.forbidden("'\(asked)' is inside '\(rule)', a Loopsy data directory (keys, config, database); "
                + "transfers never reach it", code: .pathForbidden)
        }
        if let rule = denied.first(where: { Self.isInside(path, $0) }) {
            return APIError.forbidden("'\(asked)' is inside '\(rule)', which transfer.deniedPaths refuses",
                                      code: .pathForbidden)
        }
        guard !access.owner else { return nil }
        if let rule = (dotfiles + Self.codeNames(in: path)).first(where: { rule in
            Self.isInside(path, rule)
                && !allowedDotfiles.contains { Self.isInside(path, $0) && Self.isInside($0, rule) }
        }) {
            return APIError.forbidden("'\(asked)' is inside '\(rule)', a dotfile that runs code or holds credentials; "
                + "only the node's owner may transfer it (or list it in transfer.allowedDotfiles)",
                code: .pathForbidden)
        }
        return nil
    }

    /// The directory that writing `path` would make a git repository, if any: one with HEAD,
    /// objects and refs, `path` being or lying under one of them. git takes such a directory for
    /// a bare repository without any `.git` in its name, and runs its config (core.fsmonitor…)
    /// when it runs there. (Two writes at once could each miss the other: a race, not a way.)
    static func repositoryCompleted(by path: String) -> String? {
        let signature = ["HEAD", "objects", "refs"]
        var directory = ""
        for name in KernelPath.names(path) {
            if signature.contains(where: { KernelPath.same($0, name) }), signature.allSatisfy({ part in
                var info = stat()
                return KernelPath.same(part, name) || lstat(directory + "/" + part, &info) == 0
            }) {
                return directory.isEmpty ? "/" : directory
            }
            directory += "/" + name
        }
        return nil
    }

    /// The prefixes of `path` that end in one of `codeNamesAnywhere` (byte-wise).
    static func codeNames(in path: String) -> [String] {
        var prefix = ""
        var found: [String] = []
        for name in KernelPath.names(path) {
            prefix += "/" + name
            if codeNamesAnywhere.contains(where: { KernelPath.same($0, name) }) { found.append(prefix) }
        }
        return found
    }

    /// Whether a real path lies inside an allowed root and the caller's roots.
    private func isAllowed(_ real: String, access: TransferAccess, callerRoots: [Root]?) -> Bool {
        allowed.contains { Self.isInside(real, $0.real) }
            && (callerRoots.map { roots in roots.contains { Self.isInside(real, $0.real) } } ?? true)
    }

    /// The root to resolve `components` from: the deepest of the allowed root and the caller's
    /// root that contain the path by name, and how many components that root has.
    private func root(for components: [Substring], asked: String, access: TransferAccess,
                      callerRoots: [Root]?) throws -> (real: String, depth: Int) {
        let lexical = "/" + components.joined(separator: "/")
        func deepest(_ roots: [Root]) -> (real: String, depth: Int)? {
            var best: (real: String, depth: Int)?
            for root in roots {
                for name in [root.configured, root.real] where Self.isInside(lexical, name) {
                    let depth = KernelPath.names(name).count
                    if best == nil || depth > best!.depth { best = (root.real, depth) }
                }
            }
            return best
        }
        guard var chosen = deepest(allowed) else {
            throw APIError.forbidden("'\(asked)' is outside transfer.allowedPaths (\(allowed.map(\.configured).joined(separator: ", ")))",
                                     code: .pathForbidden)
        }
        if let callerRoots {
            guard let narrower = deepest(callerRoots) else {
                throw APIError.forbidden("'\(asked)' is outside the paths this caller may use "
                    + "(\(callerRoots.map(\.configured).joined(separator: ", ")))", code: .pathForbidden)
            }
            if narrower.depth > chosen.depth { chosen = narrower }
        }
        return chosen
    }

    // MARK: Opening

    /// An open descriptor and the real path the kernel gives for it.
    struct Opened {
        var fd: Int32
        var real: String
    }

    /// Symlinks leading out of the root a path is opened from are followed by rewriting the
    /// path through them; at most this many times (then ELOOP's 403).
    static let maxRewrites = 40

    /// Opens `path` with `flags` (O_CLOEXEC is added) for `access` beneath the allowed root that
    /// contains it, and checks the opened file's real path. A symlink that leaves that root
    /// (EXDEV: an absolute one, or `..` past the root) is not followed by the kernel: the path is
    /// rewritten through it and opened again from the root that contains the new path, under the
    /// same rules. Failures are thrown as the matching 4xx; the caller owns the descriptor.
    func open(_ path: String, flags: Int32, access: TransferAccess) throws -> Opened {
        var components = try components(path)
        let callerRoots = access.roots.map { roots in roots.map { Root(configured: Self.lexical($0), real: Self.canonical($0)) } }
        for _ in 0...Self.maxRewrites {
            let root = try root(for: components, asked: path, access: access, callerRoots: callerRoots)
            if let refusal = refusal("/" + components.joined(separator: "/"), asked: path, access: access) { throw refusal }
            let rootFD = try Self.openRoot(root.real, asked: path)
            let relative = Array(components.dropFirst(root.depth))
            let fd = Self.openBeneath(rootFD, relative.isEmpty ? "." : relative.joined(separator: "/"), flags: flags)
            let code = errno
            let rewritten = fd < 0 && code == EXDEV ? Self.rewrite(rootFD, rootReal: root.real, relative) : nil
            // A path that does not open may still lead, through a symlink inside the root, into
            // a denied place: that is the answer (403), not whether something exists there
            // (404 or 400 told it, as a pull's 403 did not).
            let refusal = fd < 0 && rewritten == nil
                ? refusalOfUnopened(rootReal: root.real, relative, asked: path, access: access, callerRoots: callerRoots) : nil
            close(rootFD)
            if let rewritten {
                components = rewritten
                continue
            }
            if let refusal { throw refusal }
            guard fd >= 0 else { throw Self.openError(code, asked: path, directory: flags & O_DIRECTORY != 0) }
            do {
                let real = try Self.realPath(of: fd, asked: path)
                try check(real, asked: path, access: access, callerRoots: callerRoots)
                return Opened(fd: fd, real: real)
            } catch {
                close(fd)
                throw error
            }
        }
        throw Self.openError(ELOOP, asked: path, directory: false)
    }

    /// Where a push writes: the open directory that will hold the file (O_RDONLY, or O_PATH when
    /// it is not readable), its real
    /// path, the directories still to create below it and the file's name.
    struct WriteTarget {
        var directoryFD: Int32
        var directory: String
        var missing: [String]
        var name: String
        /// The real path the file will have.
        var path: String {
            ([directory == "/" ? "" : directory] + missing + [name]).joined(separator: "/")
        }
    }

    /// Opens the deepest existing directory on the way to `path` (beneath its root, symlinks
    /// followed as `open` does) and checks the path the file will have. The file's own name is
    /// never followed (the rename replaces a symlink there). Nothing is created here.
    func openForWriting(_ path: String, access: TransferAccess) throws -> WriteTarget {
        var components = try components(path)
        let callerRoots = access.roots.map { roots in roots.map { Root(configured: Self.lexical($0), real: Self.canonical($0)) } }
        rewriting: for _ in 0...Self.maxRewrites {
            let root = try root(for: components, asked: path, access: access, callerRoots: callerRoots)
            if let refusal = refusal("/" + components.joined(separator: "/"), asked: path, access: access) { throw refusal }
            guard components.count > root.depth, let name = components.last.map(String.init) else {
                throw APIError.conflict("'\(path)' is a directory; name the file to create", code: .isDirectory)
            }
            let rootFD = try Self.openRoot(root.real, asked: path)
            defer { close(rootFD) }
            let parents = Array(components.dropFirst(root.depth).dropLast())
            var existing = parents.count
            var fd: Int32 = -1
            while true {
                let relative = parents.prefix(existing).joined(separator: "/")
                fd = Self.openBeneath(rootFD, relative.isEmpty ? "." : relative, flags: O_RDONLY | O_DIRECTORY)
                if fd < 0 && errno == EACCES {
                    // A directory we may write but not read (a drop box): an O_PATH descriptor
                    // serves openat, mkdirat and renameat (only its fsync is lost).
                    fd = Self.openBeneath(rootFD, relative.isEmpty ? "." : relative, flags: FileSystem.pathOnly | O_DIRECTORY)
                }
                if fd >= 0 { break }
                let code = errno
                if code == EXDEV, let rewritten = Self.rewrite(rootFD, rootReal: root.real, Array(parents.prefix(existing))) {
                    components = rewritten + parents.dropFirst(existing) + [Substring(name)]
                    continue rewriting
                }
                guard code == ENOENT, existing > 0 else {
                    throw code == ENOTDIR
                        ? APIError.conflict("a parent of '\(path)' is not a directory", code: .notADirectory)
                        : Self.openError(code, asked: path, directory: true)
                }
                existing -= 1
            }
            do {
                let target = WriteTarget(directoryFD: fd, directory: try Self.realPath(of: fd, asked: path),
                                         missing: parents.dropFirst(existing).map(String.init), name: name)
                try check(target.path, asked: path, access: access, callerRoots: callerRoots)
                if !access.owner, let repository = Self.repositoryCompleted(by: target.path) {
                    throw APIError.forbidden("'\(path)' would make '\(repository)' a git repository (HEAD, objects and refs), "
                        + "whose config git runs when it runs there; only the node's owner may", code: .pathForbidden)
                }
                return target
            } catch {
                close(fd)
                throw error
            }
        }
        throw Self.openError(ELOOP, asked: path, directory: true)
    }

    /// `relative` (below the root `rootReal`, open as `rootFD`) with its first symlink replaced by
    /// the link's target: an absolute path's components, `.` and `..` resolved (everything before
    /// the link is a real directory, so that is exact). Nil when no component is a symlink now.
    static func rewrite(_ rootFD: Int32, rootReal: String, _ relative: [Substring]) -> [Substring]? {
        var current = dup(rootFD)
        guard current >= 0 else { return nil }
        defer { close(current) }
        for (index, part) in relative.enumerated() {
            let fd = openat(current, String(part), FileSystem.pathOnly | O_NOFOLLOW | O_CLOEXEC)
            guard fd >= 0 else { return nil }
            var info = stat()
            guard fstat(fd, &info) == 0 else {
                close(fd)
                return nil
            }
            guard info.st_mode & S_IFMT == S_IFLNK else {
                close(current)
                current = fd
                continue
            }
            var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
            let count = readlinkat(fd, "", &buffer, buffer.count - 1)
            close(fd)
            guard count > 0 else { return nil }
            let target = String(decoding: buffer[0..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
            let base = KernelPath.isAbsolute(target) ? [] : KernelPath.names(rootReal) + relative.prefix(index)
            var result: [Substring] = []
            for component in base + KernelPath.names(target) + relative.dropFirst(index + 1) {
                if KernelPath.same(component, ".") || component.isEmpty { continue }
                if KernelPath.same(component, "..") {
                    _ = result.popLast()
                    continue
                }
                result.append(component)
            }
            return result
        }
        return nil
    }

    /// Just before a push renames its file into place: the directory it was opened as may have
    /// been moved since, so its real path now, with `name`, must still pass. Returns that path.
    func recheck(directoryFD: Int32, name: String, asked: String, access: TransferAccess) throws -> String {
        let callerRoots = access.roots.map { roots in roots.map { Root(configured: Self.lexical($0), real: Self.canonical($0)) } }
        let directory = try Self.realPath(of: directoryFD, asked: asked)
        let path = (directory == "/" ? "" : directory) + "/" + name
        try check(path, asked: asked, access: access, callerRoots: callerRoots)
        return path
    }

    /// Why a path that did not open beneath its root is refused, if it is: judged on where it
    /// leads, every symlink on the way followed (chains and links through linked directories
    /// too) as far as the names exist, the rest taken as written.
    private func refusalOfUnopened(rootReal: String, _ relative: [Substring], asked: String, access: TransferAccess,
                                   callerRoots: [Root]?) -> (any Error)? {
        guard let leads = Self.whereItLeads(rootReal, relative.map(String.init)) else { return nil }
        do {
            try check(leads, asked: asked, access: access, callerRoots: callerRoots)
            return nil
        } catch {
            return error
        }
    }

    /// `names` below the absolute path `base`, resolved as `realpath -m` does: each symlink met
    /// is replaced by its target (at most `maxRewrites` of them; nil past that), "." dropped,
    /// ".." taking the name before it, and names that do not exist kept as written. Only
    /// lstat and readlink: nothing is opened.
    static func whereItLeads(_ base: String, _ names: [String]) -> String? {
        var resolved = KernelPath.names(base).map(String.init)
        var pending = names[...]
        var hops = 0
        while let name = pending.first {
            pending = pending.dropFirst()
            if name.isEmpty || KernelPath.same(name, ".") { continue }
            if KernelPath.same(name, "..") {
                if !resolved.isEmpty { resolved.removeLast() }
                continue
            }
            let candidate = "/" + (resolved + [name]).joined(separator: "/")
            var info = stat()
            guard lstat(candidate, &info) == 0, info.st_mode & S_IFMT == S_IFLNK else {
                resolved.append(name)
                continue
            }
            hops += 1
            var buffer = [UInt8](repeating: 0, count: Int(PATH_MAX))
            let length = buffer.withUnsafeMutableBytes {
                readlink(candidate, $0.baseAddress!.assumingMemoryBound(to: CChar.self), $0.count)
            }
            guard hops <= maxRewrites, length > 0 else { return nil }
            let target = String(decoding: buffer[0..<length], as: UTF8.self)
            if KernelPath.isAbsolute(target) { resolved = [] }
            pending = (KernelPath.names(target).map(String.init) + pending)[...]
        }
        return "/" + resolved.joined(separator: "/")
    }

    /// The decision on a real path (of an opened file, or where a new one will be).
    private func check(_ real: String, asked: String, access: TransferAccess, callerRoots: [Root]?) throws {
        guard isAllowed(real, access: access, callerRoots: callerRoots) else {
            throw APIError.forbidden("'\(asked)' leads to '\(real)', outside transfer.allowedPaths"
                + (callerRoots == nil ? "" : " or this caller's paths"), code: .pathForbidden)
        }
        if let refusal = refusal(real, asked: asked, access: access) { throw refusal }
    }

    /// The allowed root itself, opened without following any symlink (it was resolved when the
    /// daemon started; a symlink there now is someone's swap).
    private static func openRoot(_ root: String, asked: String) throws -> Int32 {
        var fd = FileSystem.openat2(AT_FDCWD, root, flags: FileSystem.pathOnly | O_DIRECTORY | O_CLOEXEC,
                                    resolve: [.noSymlinks, .noMagicLinks])
        if fd < 0 && (errno == ENOSYS || errno == EINVAL) {
            let slash = Glibc.open("/", FileSystem.pathOnly | O_DIRECTORY | O_CLOEXEC)
            guard slash >= 0 else { throw openError(errno, asked: asked, directory: true) }
            fd = walk(slash, KernelPath.names(root).joined(separator: "/"), flags: FileSystem.pathOnly | O_DIRECTORY)
            close(slash)
        }
        guard fd >= 0 else {
            let code = errno
            if code == ENOENT { throw APIError.notFound("path '\(asked)' (its allowed root \(root) does not exist)") }
            throw openError(code, asked: asked, directory: true)
        }
        return fd
    }

    /// openat2 beneath `rootFD`; without openat2, a walk that refuses every symlink.
    static func openBeneath(_ rootFD: Int32, _ relative: String, flags: Int32, mode: mode_t = 0) -> Int32 {
        for _ in 0..<8 {
            let fd = FileSystem.openat2(rootFD, relative, flags: flags | O_CLOEXEC, mode: mode,
                                        resolve: [.beneath, .noMagicLinks])
            if fd >= 0 { return fd }
            switch errno {
            case EAGAIN, EINTR: continue  // a concurrent rename during resolution: try again
            case ENOSYS, EINVAL: return walk(rootFD, relative, flags: flags, mode: mode)
            default: return -1
            }
        }
        errno = EAGAIN
        return -1
    }

    /// Opens `relative` below `rootFD` one component at a time: each directory with
    /// O_PATH | O_NOFOLLOW | O_DIRECTORY, the last with `flags | O_NOFOLLOW`. A symlink anywhere
    /// fails with EXDEV.
    static func walk(_ rootFD: Int32, _ relative: String, flags: Int32, mode: mode_t = 0) -> Int32 {
        let parts = KernelPath.names(relative).filter { !KernelPath.same($0, ".") }.map(String.init)
        guard let last = parts.last else { return openat(rootFD, ".", flags | O_CLOEXEC, mode) }
        var current = dup(rootFD)
        guard current >= 0 else { return -1 }
        func isSymlink(_ name: String) -> Bool {
            var info = stat()
            return fstatat(current, name, &info, AT_SYMLINK_NOFOLLOW) == 0 && info.st_mode & S_IFMT == S_IFLNK
        }
        for part in parts.dropLast() {
            let next = openat(current, part, FileSystem.pathOnly | O_NOFOLLOW | O_DIRECTORY | O_CLOEXEC)
            if next < 0 {
                let code = errno == ENOTDIR && isSymlink(part) ? EXDEV : errno
                close(current)
                errno = code
                return -1
            }
            close(current)
            current = next
        }
        let fd = openat(current, last, flags | O_NOFOLLOW | O_CLOEXEC, mode)
        let code = fd < 0 && (errno == ELOOP || errno == ENOTDIR) && isSymlink(last) ? EXDEV : errno
        close(current)
        errno = code
        return fd
    }

    /// The path the kernel has for an open descriptor.
    static func realPath(of fd: Int32, asked: String) throws -> String {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let count = readlink("/proc/self/fd/\(fd)", &buffer, buffer.count - 1)
        guard count > 0 else {
            throw APIError(status: 500, code: .ioError, message: "cannot tell where '\(asked)' is: /proc/self/fd is unreadable")
        }
        let real = String(decoding: buffer[0..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        guard KernelPath.isAbsolute(real), !real.utf8.reversed().starts(with: " (deleted)".utf8.reversed()) else {
            throw APIError.notFound("path '\(asked)'")
        }
        return real
    }

    static func openError(_ code: Int32, asked: String, directory: Bool) -> APIError {
        switch code {
        case EXDEV, ELOOP:
            return APIError.forbidden("'\(asked)' leads outside its allowed path through a symbolic link; "
                + "transfers follow only links that stay inside", code: .pathForbidden)
        case EACCES, EPERM:
            return APIError.forbidden("'\(asked)' is not readable by the daemon", code: .permissionDenied)
        case ENOTDIR where directory:
            return APIError.badRequest("'\(asked)' is not a directory", code: .notADirectory)
        case EMFILE, ENFILE, ENOMEM:
            // The daemon's state, not the path's: a 404 would tell the caller the path is not there.
            return APIError(status: 503, code: .unavailable,
                            message: "the daemon is short of file descriptors or memory; retry in a few seconds",
                            headers: ["Retry-After": "2"])
        default:
            return APIError.notFound("path '\(asked)'")
        }
    }

    /// True when `path` is `root` or below it on a component boundary (`/home/alice` is not
    /// inside `/home/al`), byte for byte.
    static func isInside(_ path: String, _ root: String) -> Bool { KernelPath.isInside(path, root) }

    static func realPath(_ path: String) -> String? {
        guard let resolved = realpath(path, nil) else { return nil }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    /// `path` with `.`, empty and trailing components removed.
    static func lexical(_ path: String) -> String {
        "/" + KernelPath.names(path).filter { !KernelPath.same($0, ".") }.joined(separator: "/")
    }

    /// A configured path's real location if it exists, else its lexical form.
    static func canonical(_ path: String) -> String {
        realPath(path) ?? lexical(path)
    }
}
