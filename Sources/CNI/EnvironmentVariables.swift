#if canImport(Glibc)
import Glibc
#endif

/// The environment variables of one invocation: the process's, which `main` hands to the plugin,
/// or any set a test gives (`["CNI_COMMAND": "ADD", ...]`).
///
/// The process's are read in place, as getenv reads them: a lookup scans `environ` and makes a
/// String of the one value found, and nothing else is copied. Copying the environment into a
/// dictionary instead cost 22,000 instructions with 6 variables and 64,000 with 36 (hashing,
/// allocation and a String per name and value), 2-6% of an ADD, for the seven look-ups a verb
/// makes.
public struct EnvironmentVariables: ExpressibleByDictionaryLiteral, @unchecked Sendable {
    private enum Storage {
        /// `environ` at the time it was taken; the plugin never calls setenv, so it stays valid.
        case process(UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>)
        case given([(name: String, value: String)])
    }

    private let storage: Storage

    /// The process's environment.
    public static func process() -> EnvironmentVariables { EnvironmentVariables(storage: .process(environ)) }

    public init(_ variables: [String: String]) {
        storage = .given(variables.map { (name: $0.key, value: $0.value) })
    }

    public init(dictionaryLiteral elements: (String, String)...) {
        storage = .given(elements.map { (name: $0.0, value: $0.1) })
    }

    private init(storage: Storage) { self.storage = storage }

    /// The value of `name`; of two entries with one name, the first (as getenv).
    public subscript(name: String) -> String? {
        switch storage {
        case .given(let pairs):
            return pairs.first { $0.name == name }?.value
        case .process(let environ):
            return name.withCString { key -> String? in
                let length = strlen(key)
                var entry = environ
                while let text = entry.pointee {
                    entry += 1
                    // strncmp stops at the entry's end: "NAME=" matches only a whole name.
                    if text[0] == key[0] && strncmp(text, key, length) == 0 && text[length] == 0x3D {
                        return String(cString: text + length + 1)
                    }
                }
                return nil
            }
        }
    }

    /// Every variable, first entry of a name only (for delegated plugins).
    public var all: [(name: String, value: String)] {
        switch storage {
        case .given(let pairs):
            var seen = Set<String>()
            return pairs.filter { seen.insert($0.name).inserted }
        case .process(let environ):
            var result: [(name: String, value: String)] = []
            var seen = Set<String>()
            var entry = environ
            while let text = entry.pointee {
                entry += 1
                guard let equals = strchr(text, 0x3D) else { continue }
                let name = String(decoding: UnsafeRawBufferPointer(start: text, count: equals - text), as: UTF8.self)
                if seen.insert(name).inserted { result.append((name, String(cString: equals + 1))) }
            }
            return result
        }
    }
}
