import JSON

/// The part of YAML that kubeconfig files use, read into a `JSONValue`: block mappings and
/// sequences (a sequence may sit at its key's indentation, as kubectl writes it), plain, single-
/// and double-quoted scalars, comments, and flow collections written as JSON (`{}`, `[]`).
/// Anything else (anchors, block scalars, multi-line plain scalars) is an error, never a guess.
/// A document that starts with `{` is read as JSON, which kubectl accepts too.
public enum MiniYAML {
    public struct Error: Swift.Error, Equatable, CustomStringConvertible {
        public var line: Int
        public var reason: String
        public var description: String { "line \(line): \(reason)" }
    }

    struct Line {
        var number: Int
        var indent: Int
        var text: Substring
        var isSequenceItem: Bool { text == "-" || text.hasPrefix("- ") }
    }

    public static func parse(_ document: String) throws(Error) -> JSONValue {
        let trimmed = document.drop { $0 == " " || $0 == "\n" || $0 == "\t" || $0 == "\r" }
        if trimmed.hasPrefix("{") {
            do { return try JSONValue.parse(String(trimmed)) } catch { throw Error(line: 1, reason: "invalid JSON: \(error)") }
        }
        var lines: [Line] = []
        for (index, raw) in document.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            var text = raw
            if text.hasSuffix("\r") { text = text.dropLast() }
            let indent = text.prefix { $0 == " " }.count
            text = stripComment(text.dropFirst(indent))
            while text.last == " " || text.last == "\t" { text = text.dropLast() }
            if text.isEmpty || text == "---" || text == "..." { continue }
            if text.hasPrefix("\t") { throw Error(line: index + 1, reason: "tabs cannot indent YAML") }
            lines.append(Line(number: index + 1, indent: indent, text: text))
        }
        guard !lines.isEmpty else { return .null }
        var parser = Parser(lines: lines)
        let value = try parser.block(indent: lines[0].indent)
        if parser.index < lines.count {
            throw Error(line: lines[parser.index].number, reason: "unexpected indentation")
        }
        return value
    }

    /// Drops a comment: `#` at the start or after a blank, outside quotes.
    static func stripComment(_ text: Substring) -> Substring {
        var quote: Character?
        var previous: Character = " "
        for index in text.indices {
            let c = text[index]
            if let q = quote {
                if c == q { quote = nil }
            } else if c == "\"" || c == "'" {
                if previous == " " || previous == ":" || previous == "-" || previous == "[" || previous == "{" || previous == "," {
                    quote = c
                }
            } else if c == "#" && (previous == " " || previous == "\t") {
                return text[..<index]
            } else if c == "#" && index == text.startIndex {
                return text[..<index]
            }
            previous = c
        }
        return text
    }

    struct Parser {
        var lines: [Line]
        var index = 0

        mutating func block(indent: Int) throws(Error) -> JSONValue {
            lines[index].isSequenceItem ? try sequence(indent: indent) : try mapping(indent: indent)
        }

        mutating func sequence(indent: Int) throws(Error) -> JSONValue {
            var items: [JSONValue] = []
            while index < lines.count, lines[index].indent == indent, lines[index].isSequenceItem {
                let line = lines[index]
                let rest = line.text.dropFirst().drop { $0 == " " }
                if rest.isEmpty {
                    index += 1
                    if index < lines.count, lines[index].indent > indent {
                        items.append(try block(indent: lines[index].indent))
                    } else {
                        items.append(.null)
                    }
                } else if MiniYAML.keySplit(rest) != nil || rest.hasPrefix("- ") {
                    // "- key: value" opens a mapping whose further keys sit under "key".
                    lines[index].indent = indent + (line.text.count - rest.count)
                    lines[index].text = rest
                    items.append(try block(indent: lines[index].indent))
                } else {
                    items.append(try MiniYAML.scalar(rest, line: line.number))
                    index += 1
                }
            }
            return .array(items)
        }

        mutating func mapping(indent: Int) throws(Error) -> JSONValue {
            var object = JSONObject()
            while index < lines.count, lines[index].indent == indent, !lines[index].isSequenceItem {
                let line = lines[index]
                guard let (rawKey, rawValue) = MiniYAML.keySplit(line.text) else {
                    throw Error(line: line.number, reason: "expected \"key: value\"")
                }
                let key: String
                switch try MiniYAML.scalar(rawKey, line: line.number) {
                case .string(let s): key = s
                case .number(let s): key = s
                case .bool(let b): key = b ? "true" : "false"
                default: key = String(rawKey)
                }
                guard object[key] == nil else { throw Error(line: line.number, reason: "key \"\(key)\" appears twice") }
                index += 1
                if rawValue.isEmpty {
                    if index < lines.count, lines[index].indent > indent || (lines[index].indent == indent && lines[index].isSequenceItem) {
                        object[key] = try block(indent: lines[index].indent)
                    } else {
                        object[key] = .null
                    }
                } else {
                    if rawValue == "|" || rawValue == ">" || rawValue.hasPrefix("|") || rawValue.hasPrefix(">") || rawValue.hasPrefix("&")
                        || rawValue.hasPrefix("*")
                    {
                        throw Error(line: line.number, reason: "block scalars, anchors and aliases are not supported")
                    }
                    object[key] = try MiniYAML.scalar(rawValue, line: line.number)
                    if index < lines.count, lines[index].indent > indent {
                        throw Error(line: lines[index].number, reason: "unexpected indentation (multi-line values are not supported)")
                    }
                }
            }
            return .object(object)
        }
    }

    /// Splits `key: value` (or `key:`) at the first colon followed by a blank or the end of the
    /// line, outside quotes.
    static func keySplit(_ text: Substring) -> (Substring, Substring)? {
        var quote: Character?
        var i = text.startIndex
        while i < text.endIndex {
            let c = text[i]
            if let q = quote {
                if c == q { quote = nil }
            } else if (c == "\"" || c == "'") && i == text.startIndex {
                quote = c
            } else if c == ":" {
                let next = text.index(after: i)
                if next == text.endIndex || text[next] == " " {
                    var key = text[..<i]
                    while key.last == " " { key = key.dropLast() }
                    return (key, text[next...].drop { $0 == " " })
                }
            } else if c == "{" || c == "[" {
                if i == text.startIndex { return nil }
            }
            i = text.index(after: i)
        }
        return nil
    }

    static func scalar(_ text: Substring, line: Int) throws(Error) -> JSONValue {
        if text.hasPrefix("\"") {
            // YAML's double-quoted escapes are a superset of JSON's; the common ones match.
            guard text.count >= 2, text.hasSuffix("\"") else { throw Error(line: line, reason: "unterminated string") }
            do { return try JSONValue.parse(String(text)) } catch { throw Error(line: line, reason: "invalid quoted string: \(error)") }
        }
        if text.hasPrefix("'") {
            guard text.count >= 2, text.hasSuffix("'") else { throw Error(line: line, reason: "unterminated string") }
            var body = String(text.dropFirst().dropLast())
            body = body.replacingAll("''", with: "'")
            return .string(body)
        }
        if text.hasPrefix("{") || text.hasPrefix("[") {
            do { return try JSONValue.parse(String(text)) } catch {
                throw Error(line: line, reason: "flow collections must be written as JSON: \(error)")
            }
        }
        switch text {
        case "null", "Null", "NULL", "~": return .null
        case "true", "True", "TRUE": return .bool(true)
        case "false", "False", "FALSE": return .bool(false)
        default: break
        }
        if let first = text.first, first == "-" || first.isNumber, Int(text) != nil || (Double(text) != nil && !text.contains("_")) {
            return .number(String(text))
        }
        return .string(String(text))
    }
}

extension String {
    func replacingAll(_ target: String, with replacement: String) -> String {
        var result = ""
        var rest = Substring(self)
        while let range = rest.firstRange(of: target) {
            result += rest[..<range.lowerBound]
            result += replacement
            rest = rest[range.upperBound...]
        }
        return result + rest
    }
}
