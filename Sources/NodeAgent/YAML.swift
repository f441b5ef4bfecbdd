import CYAML
import JSON

/// A YAML document (a kubeconfig) read by libyaml into a `JSONValue`: everything YAML 1.1 has
/// (block and flow collections, every scalar style, comments, anchors and aliases, `<<` merge
/// keys, CRLF line ends, a byte-order mark), as kubectl's own reader (sigs.k8s.io/yaml) takes it.
///
/// Plain scalars stay strings except `true`/`false` (booleans) and `null`/`~`/nothing (null):
/// every kubeconfig field the agent reads is a string or a boolean, and a token made of digits
/// must not become a number. Quoted scalars are always strings.
public enum YAML {
    public struct Error: Swift.Error, Equatable, CustomStringConvertible {
        public var line: Int
        public var reason: String
        public var description: String { line > 0 ? "line \(line): \(reason)" : reason }
    }

    /// Aliases may repeat a node many times ("billion laughs") or contain themselves: the
    /// conversion stops at this many values or this depth.
    static let maxValues = 100_000
    static let maxDepth = 64

    public static func parse(_ text: String) throws(Error) -> JSONValue { try parse(Array(text.utf8)) }

    public static func parse(_ bytes: [UInt8]) throws(Error) -> JSONValue {
        var parser = yaml_parser_t()
        guard yaml_parser_initialize(&parser) == 1 else { throw Error(line: 0, reason: "libyaml could not be initialised") }
        defer { yaml_parser_delete(&parser) }
        var document = yaml_document_t()
        let loaded = bytes.withUnsafeBufferPointer { buffer in
            yaml_parser_set_input_string(&parser, buffer.baseAddress, buffer.count)
            return yaml_parser_load(&parser, &document)
        }
        guard loaded == 1 else {
            let problem = parser.problem.map { String(cString: $0) } ?? "not YAML"
            let context = parser.context.map { String(cString: $0) + ": " } ?? ""
            throw Error(line: parser.problem_mark.line + 1, reason: context + problem)
        }
        defer { yaml_document_delete(&document) }
        guard let root = yaml_document_get_root_node(&document) else { throw Error(line: 0, reason: "the document is empty") }
        var converter = Converter(document: document)
        return try converter.value(root, depth: 0)
    }

    struct Converter {
        var document: yaml_document_t
        var count = 0

        mutating func node(_ index: Int32) throws(Error) -> UnsafeMutablePointer<yaml_node_t> {
            guard let node = yaml_document_get_node(&document, index) else { throw Error(line: 0, reason: "a dangling node") }
            return node
        }

        mutating func value(_ node: UnsafeMutablePointer<yaml_node_t>, depth: Int) throws(Error) -> JSONValue {
            count += 1
            let line = node.pointee.start_mark.line + 1
            guard count <= YAML.maxValues else { throw Error(line: line, reason: "more than \(YAML.maxValues) values (aliases repeated?)") }
            guard depth < YAML.maxDepth else { throw Error(line: line, reason: "nested deeper than \(YAML.maxDepth) (a recursive alias?)") }
            switch node.pointee.type {
            case YAML_SCALAR_NODE:
                let scalar = node.pointee.data.scalar
                let text = String(decoding: UnsafeBufferPointer(start: scalar.value, count: scalar.length), as: UTF8.self)
                guard scalar.style == YAML_PLAIN_SCALAR_STYLE else { return .string(text) }
                switch text {
                case "true", "True", "TRUE": return .bool(true)
                case "false", "False", "FALSE": return .bool(false)
                case "", "~", "null", "Null", "NULL": return .null
                default: return .string(text)
                }
            case YAML_SEQUENCE_NODE:
                var items: [JSONValue] = []
                var item = node.pointee.data.sequence.items.start
                while let current = item, current != node.pointee.data.sequence.items.top {
                    items.append(try value(try self.node(current.pointee), depth: depth + 1))
                    item = current + 1
                }
                return .array(items)
            case YAML_MAPPING_NODE:
                var object = JSONObject()
                var merged: [JSONObject] = []
                var pair = node.pointee.data.mapping.pairs.start
                while let current = pair, current != node.pointee.data.mapping.pairs.top {
                    pair = current + 1
                    let keyNode = try self.node(current.pointee.key)
                    let key: String
                    switch try value(keyNode, depth: depth + 1) {
                    case .string(let s): key = s
                    case .bool(let b): key = b ? "true" : "false"
                    case .null: key = "null"
                    default: throw Error(line: keyNode.pointee.start_mark.line + 1, reason: "a mapping key that is not a scalar")
                    }
                    let entry = try value(try self.node(current.pointee.value), depth: depth + 1)
                    if key == "<<" && keyNode.pointee.data.scalar.style == YAML_PLAIN_SCALAR_STYLE {
                        switch entry {
                        case .object(let o): merged.append(o)
                        case .array(let list): merged += list.compactMap(\.objectValue)
                        default: throw Error(line: keyNode.pointee.start_mark.line + 1, reason: "<< merges a mapping or a list of them")
                        }
                        continue
                    }
                    guard object[key] == nil else {
                        throw Error(line: keyNode.pointee.start_mark.line + 1, reason: "duplicate key \"\(key)\"")
                    }
                    object[key] = entry
                }
                // Explicit keys win over merged ones; an earlier merged mapping over a later one.
                for source in merged {
                    for (key, value) in source.entries where object[key] == nil { object[key] = value }
                }
                return .object(object)
            default:
                return .null
            }
        }
    }
}
