/// A CNI spec version such as 1.1.0, compared numerically.
public struct CNIVersion: Comparable, Hashable, Sendable, CustomStringConvertible {
    public let major: Int, minor: Int, patch: Int

    public init(_ major: Int, _ minor: Int, _ patch: Int) {
        self.major = major
        self.minor = minor
        self.patch = patch
    }

    public init?(_ text: String) {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, let a = Int(parts[0]), let b = Int(parts[1]), let c = Int(parts[2]),
            a >= 0, b >= 0, c >= 0
        else { return nil }
        self.init(a, b, c)
    }

    public var description: String { "\(major).\(minor).\(patch)" }

    public static func < (l: CNIVersion, r: CNIVersion) -> Bool {
        (l.major, l.minor, l.patch) < (r.major, r.minor, r.patch)
    }

    public static let v0_1_0 = CNIVersion(0, 1, 0)
    public static let v0_2_0 = CNIVersion(0, 2, 0)
    public static let v0_3_0 = CNIVersion(0, 3, 0)
    public static let v0_4_0 = CNIVersion(0, 4, 0)
    public static let v1_0_0 = CNIVersion(1, 0, 0)
    public static let v1_1_0 = CNIVersion(1, 1, 0)

    /// Every version whose configuration we accept and whose result format we write.
    public static let supported: [CNIVersion] = [
        .v0_1_0, .v0_2_0, .v0_3_0, CNIVersion(0, 3, 1), .v0_4_0, .v1_0_0, .v1_1_0,
    ]
    public static let latest = v1_1_0

    /// Parses and checks a config's `cniVersion`: absent means 0.1.0, as libcni decodes it.
    public static func from(config value: String?) throws(CNIError) -> CNIVersion {
        guard let value else { return .v0_1_0 }
        guard let version = CNIVersion(value) else {
            throw CNIError(
                .incompatibleVersion, "invalid cniVersion \"\(value)\"",
                details: "expected one of \(supported.map(\.description).joined(separator: ", "))")
        }
        guard supported.contains(version) else {
            throw CNIError(
                .incompatibleVersion, "unsupported cniVersion \(value)",
                details: "bridge-ipam supports \(supported.map(\.description).joined(separator: ", "))")
        }
        return version
    }
}
