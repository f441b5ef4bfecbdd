import JSON

/// The invocation log's settings: `logFile`, `logLevel` and `logMaxSize` in the network config.
/// Off unless `logFile` is given.
public struct LogSettings: Equatable, Sendable {
    /// What gets a line: `error` only failed invocations, `info` every invocation, `debug` every
    /// invocation with its whole stdin and stdout.
    public enum Level: String, Comparable, Sendable, CaseIterable {
        case error, info, debug

        public static func < (l: Level, r: Level) -> Bool { l.rank < r.rank }
        private var rank: Int { self == .error ? 0 : self == .info ? 1 : 2 }
    }

    public var path: String
    public var level: Level
    /// When the file would grow past this, it is renamed to `<path>.1` (replacing the older one)
    /// and a new file is started, so the log takes at most about twice this on disk.
    public var maxSize: Int

    public static let defaultMaxSize = 10 << 20
    public static let maxSizeRange = 1024...(1 << 40)

    public init(path: String, level: Level = .info, maxSize: Int = LogSettings.defaultMaxSize) {
        self.path = path
        self.level = level
        self.maxSize = maxSize
    }

    /// The settings of a decoded network config; nil when it names no `logFile`.
    public static func parse(config object: JSONObject) throws(CNIError) -> LogSettings? {
        try parse(ConfigFields(object))
    }

    static func parse(_ fields: ConfigFields) throws(CNIError) -> LogSettings? {
        guard let path = try fields.string("logFile") else { return nil }
        guard path.hasPrefix("/"), !path.hasSuffix("/") else {
            throw fields.invalid("logFile", "\"\(path)\" must be an absolute path of a file")
        }
        var settings = LogSettings(path: path)
        if let text = try fields.string("logLevel") {
            guard let level = Level(rawValue: text) else {
                throw fields.invalid("logLevel", "\"\(text)\" is not one of \(Level.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            settings.level = level
        }
        settings.maxSize = try fields.int("logMaxSize", in: maxSizeRange) ?? defaultMaxSize
        return settings
    }
}
