import Formatting
/// Encodes an `Encodable` value as one line of JSON with its keys in the order `encode(to:)` gives them (Foundation's
/// `JSONEncoder` orders them at random, or sorted), numbers in the shortest form that reads back as the same value:
/// a float32 as its own shortest form, a double with an integral value below 10^15 as an integer. A value that is
/// not finite cannot be written (JSON has no NaN): encode nil for it.
enum OrderedJSONEncoder {
    static func encode(_ value: some Encodable) throws -> String {
        let root = Node()
        try value.encode(to: NodeEncoder(node: root, codingPath: []))
        var out = ""
        root.write(to: &out)
        return out
    }

    /// A value being built: a leaf's text, or an object's or array's children in order.
    final class Node {
        enum Content { case empty, leaf(String), object([(String, Node)]), array([Node]) }
        var content = Content.empty

        func child(forKey key: String) -> Node {
            let node = Node()
            if case .object(var pairs) = content {
                pairs.append((key, node))
                content = .object(pairs)
            } else {
                content = .object([(key, node)])
            }
            return node
        }

        func appendElement() -> Node {
            let node = Node()
            if case .array(var elements) = content {
                elements.append(node)
                content = .array(elements)
            } else {
                content = .array([node])
            }
            return node
        }

        func write(to out: inout String) {
            switch content {
            case .empty: out += "{}"
            case .leaf(let text): out += text
            case .object(let pairs):
                out += "{"
                for (i, (key, node)) in pairs.enumerated() {
                    if i > 0 { out += "," }
                    out += OrderedJSONEncoder.quoted(key) + ":"
                    node.write(to: &out)
                }
                out += "}"
            case .array(let elements):
                out += "["
                for (i, node) in elements.enumerated() {
                    if i > 0 { out += "," }
                    node.write(to: &out)
                }
                out += "]"
            }
        }
    }

    static func quoted(_ s: String) -> String { quotedString(s) }

    static func number(_ x: Double, codingPath: [any CodingKey]) throws -> String {
        guard x.isFinite else {
            throw EncodingError.invalidValue(x, .init(codingPath: codingPath, debugDescription: "\(x) is not JSON; encode nil"))
        }
        if x == x.rounded(), abs(x) < 1e15 { return String(Int64(x)) }
        return "\(x)"
    }

    static func number(_ x: Float, codingPath: [any CodingKey]) throws -> String {
        guard x.isFinite else {
            throw EncodingError.invalidValue(x, .init(codingPath: codingPath, debugDescription: "\(x) is not JSON; encode nil"))
        }
        return "\(x)"
    }

    struct NodeEncoder: Encoder {
        let node: Node
        var codingPath: [any CodingKey]
        var userInfo: [CodingUserInfoKey: Any] { [:] }

        func container<Key: CodingKey>(keyedBy type: Key.Type) -> KeyedEncodingContainer<Key> {
            if case .empty = node.content { node.content = .object([]) }
            return KeyedEncodingContainer(Keyed<Key>(node: node, codingPath: codingPath))
        }

        func unkeyedContainer() -> any UnkeyedEncodingContainer {
            if case .empty = node.content { node.content = .array([]) }
            return Unkeyed(node: node, codingPath: codingPath)
        }

        func singleValueContainer() -> any SingleValueEncodingContainer { Single(node: node, codingPath: codingPath) }
    }

    /// Encodes one value into a leaf or a nested structure.
    static func leaf(_ value: some Encodable, into node: Node, codingPath: [any CodingKey]) throws {
        switch value {
        case let x as Double: node.content = .leaf(try number(x, codingPath: codingPath))
        case let x as Float: node.content = .leaf(try number(x, codingPath: codingPath))
        case let s as String: node.content = .leaf(quoted(s))
        case let b as Bool: node.content = .leaf(b ? "true" : "false")
        case let i as any BinaryInteger: node.content = .leaf("\(i)")
        default: try value.encode(to: NodeEncoder(node: node, codingPath: codingPath))
        }
    }

    struct Keyed<Key: CodingKey>: KeyedEncodingContainerProtocol {
        let node: Node
        var codingPath: [any CodingKey]

        mutating func encodeNil(forKey key: Key) throws { node.child(forKey: key.stringValue).content = .leaf("null") }

        mutating func encode<T: Encodable>(_ value: T, forKey key: Key) throws {
            try OrderedJSONEncoder.leaf(value, into: node.child(forKey: key.stringValue), codingPath: codingPath + [key])
        }

        mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type,
                                                            forKey key: Key) -> KeyedEncodingContainer<NestedKey> {
            let child = node.child(forKey: key.stringValue)
            child.content = .object([])
            return KeyedEncodingContainer(Keyed<NestedKey>(node: child, codingPath: codingPath + [key]))
        }

        mutating func nestedUnkeyedContainer(forKey key: Key) -> any UnkeyedEncodingContainer {
            let child = node.child(forKey: key.stringValue)
            child.content = .array([])
            return Unkeyed(node: child, codingPath: codingPath + [key])
        }

        mutating func superEncoder() -> any Encoder { NodeEncoder(node: node.child(forKey: "super"), codingPath: codingPath) }
        mutating func superEncoder(forKey key: Key) -> any Encoder {
            NodeEncoder(node: node.child(forKey: key.stringValue), codingPath: codingPath + [key])
        }
    }

    struct Unkeyed: UnkeyedEncodingContainer {
        let node: Node
        var codingPath: [any CodingKey]
        var count: Int {
            if case .array(let elements) = node.content { return elements.count }
            return 0
        }

        mutating func encodeNil() throws { node.appendElement().content = .leaf("null") }
        mutating func encode<T: Encodable>(_ value: T) throws {
            try OrderedJSONEncoder.leaf(value, into: node.appendElement(), codingPath: codingPath)
        }
        mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type) -> KeyedEncodingContainer<NestedKey> {
            let child = node.appendElement()
            child.content = .object([])
            return KeyedEncodingContainer(Keyed<NestedKey>(node: child, codingPath: codingPath))
        }
        mutating func nestedUnkeyedContainer() -> any UnkeyedEncodingContainer {
            let child = node.appendElement()
            child.content = .array([])
            return Unkeyed(node: child, codingPath: codingPath)
        }
        mutating func superEncoder() -> any Encoder { NodeEncoder(node: node.appendElement(), codingPath: codingPath) }
    }

    struct Single: SingleValueEncodingContainer {
        let node: Node
        var codingPath: [any CodingKey]
        mutating func encodeNil() throws { node.content = .leaf("null") }
        mutating func encode<T: Encodable>(_ value: T) throws {
            try OrderedJSONEncoder.leaf(value, into: node, codingPath: codingPath)
        }
    }
}
