import Foundation
@testable import LoopsyStore

/// A new empty directory under the temp dir, and this build's migrations.
func scratch(_ prefix: String) throws -> (directory: String, migrations: [Migration]) {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("\(prefix)-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    return (directory, try Migration.load(from: try Migration.locateDirectory(environment: [:], executablePath: nil)))
}

/// A new empty directory and a database in it with every migration applied; the directory goes
/// when the last reference does (a suite's instance, after its test).
final class ScratchDatabase {
    let directory: String
    let pool: DatabasePool

    init(_ prefix: String) throws {
        let (directory, migrations) = try scratch(prefix)
        self.directory = directory
        pool = try DatabasePool(path: directory + "/t.db", migrations: migrations)
    }

    deinit { try? FileManager.default.removeItem(atPath: directory) }
}
