/*
 * The Java client (org.apache.kafka:kafka-clients) as a test peer for kproto.
 *
 * One long-lived process serves commands: one JSON object per line on stdin,
 * one JSON reply per line on stdout ({"id", "ok", ...} or {"id", "ok": false,
 * "error"}). Every other output (the client's logging) goes to stderr.
 * Bytes travel as base64 strings; null stays null.
 *
 * Commands ("op"):
 *   create_topic  bootstrap, topic, partitions
 *   produce       bootstrap, topic, compression, transactional_id?, config?,
 *                 transactions: [{records: [record], end: "commit" | "abort" | null}]
 *                 -> sent: [[{partition, offset, timestamp}]] (one list per transaction)
 *   consume       bootstrap, topic, isolation_level, config?, and either
 *                 partitions (assign, read from the beginning to the end offsets the
 *                 isolation level sees) or group + assignor + count + timeout_ms
 *                 (subscribe, read until count records came, commit them)
 *                 -> records: [record], end_offsets
 *   committed     bootstrap, group -> offsets: [{topic, partition, offset, metadata}]
 *   member_start  name, bootstrap, group, topic, assignor, config?  (a consumer polling in its own thread)
 *   member_state  name -> assignment: [[topic, partition]], generation, error
 *   member_stop   name -> the final member_state
 * A record is {partition, key, value, headers: [[key, value]], timestamp}; consumed
 * records add topic, offset and timestamp_type.
 */

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.BufferedReader;
import java.io.FileDescriptor;
import java.io.FileOutputStream;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Base64;
import java.util.Collection;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.consumer.ConsumerRebalanceListener;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.header.internals.RecordHeader;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;

public final class KafkaPeer {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final Base64.Encoder B64 = Base64.getEncoder();
    private static final Base64.Decoder UNB64 = Base64.getDecoder();
    private static final Map<String, Member> MEMBERS = new ConcurrentHashMap<>();

    public static void main(String[] args) throws Exception {
        // Replies own stdout; anything the client libraries print goes to stderr.
        PrintStream replies = new PrintStream(new FileOutputStream(FileDescriptor.out), true, "UTF-8");
        System.setOut(System.err);
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        replies.println("{\"ready\": true}");
        String line;
        while ((line = in.readLine()) != null) {
            if (line.isBlank()) continue;
            JsonNode cmd = JSON.readTree(line);
            ObjectNode reply = JSON.createObjectNode();
            reply.set("id", cmd.get("id"));
            String op = cmd.path("op").asText();
            if (op.equals("quit")) break;
            try {
                dispatch(op, cmd, reply);
                reply.put("ok", true);
            } catch (Exception e) {
                reply.put("ok", false);
                reply.put("error", e.toString() + (e.getCause() != null ? " caused by " + e.getCause() : ""));
            }
            replies.println(JSON.writeValueAsString(reply));
        }
        for (Member m : MEMBERS.values()) m.stop();
        System.exit(0);
    }

    private static void dispatch(String op, JsonNode cmd, ObjectNode reply) throws Exception {
        switch (op) {
            case "create_topic": createTopic(cmd); break;
            case "produce": produce(cmd, reply); break;
            case "consume": consume(cmd, reply); break;
            case "committed": committed(cmd, reply); break;
            case "member_start": {
                Member m = new Member(cmd);
                if (MEMBERS.putIfAbsent(m.name, m) != null) throw new IllegalArgumentException("member exists: " + m.name);
                m.thread.start();
                break;
            }
            case "member_state": member(cmd).describe(reply); break;
            case "member_stop": {
                Member m = member(cmd);
                m.stop();
                MEMBERS.remove(m.name);
                m.describe(reply);
                break;
            }
            default: throw new IllegalArgumentException("unknown op: " + op);
        }
    }

    private static Member member(JsonNode cmd) {
        Member m = MEMBERS.get(cmd.path("name").asText());
        if (m == null) throw new IllegalArgumentException("no member " + cmd.path("name"));
        return m;
    }

    private static Properties props(JsonNode cmd) {
        Properties p = new Properties();
        p.put("bootstrap.servers", cmd.path("bootstrap").asText());
        for (Map.Entry<String, JsonNode> e : cmd.path("config").properties()) p.put(e.getKey(), e.getValue().asText());
        return p;
    }

    private static byte[] bytes(JsonNode n) {
        return n == null || n.isNull() ? null : UNB64.decode(n.asText());
    }

    private static void putBytes(ObjectNode o, String field, byte[] b) {
        if (b == null) o.putNull(field); else o.put(field, B64.encodeToString(b));
    }

    private static void createTopic(JsonNode cmd) throws Exception {
        try (Admin admin = Admin.create(props(cmd))) {
            NewTopic t = new NewTopic(cmd.path("topic").asText(), cmd.path("partitions").asInt(1), (short) 1);
            admin.createTopics(List.of(t)).all().get(30, TimeUnit.SECONDS);
        }
    }

    private static void produce(JsonNode cmd, ObjectNode reply) throws Exception {
        Properties p = props(cmd);
        p.put("key.serializer", ByteArraySerializer.class.getName());
        p.put("value.serializer", ByteArraySerializer.class.getName());
        p.put("compression.type", cmd.path("compression").asText("none"));
        boolean transactional = cmd.hasNonNull("transactional_id");
        if (transactional) p.put("transactional.id", cmd.get("transactional_id").asText());
        String topic = cmd.path("topic").asText();
        ArrayNode sent = reply.putArray("sent");
        try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(p)) {
            if (transactional) producer.initTransactions();
            for (JsonNode txn : cmd.path("transactions")) {
                if (transactional) producer.beginTransaction();
                List<Future<RecordMetadata>> futures = new ArrayList<>();
                for (JsonNode r : txn.path("records")) {
                    List<Header> headers = new ArrayList<>();
                    for (JsonNode h : r.path("headers")) headers.add(new RecordHeader(h.get(0).asText(), bytes(h.get(1))));
                    Integer partition = r.hasNonNull("partition") ? r.get("partition").asInt() : null;
                    Long ts = r.hasNonNull("timestamp") ? r.get("timestamp").asLong() : null;
                    futures.add(producer.send(new ProducerRecord<>(topic, partition, ts, bytes(r.get("key")), bytes(r.get("value")), headers)));
                }
                // Flushed before the end of the transaction: aborted records are in the log too.
                producer.flush();
                ArrayNode out = sent.addArray();
                for (Future<RecordMetadata> f : futures) {
                    RecordMetadata md = f.get(30, TimeUnit.SECONDS);
                    ObjectNode o = out.addObject();
                    o.put("partition", md.partition());
                    o.put("offset", md.offset());
                    o.put("timestamp", md.timestamp());
                }
                String end = txn.path("end").asText("");
                if (end.equals("commit")) producer.commitTransaction();
                else if (end.equals("abort")) producer.abortTransaction();
                else if (transactional) throw new IllegalArgumentException("a transaction ends with commit or abort");
            }
        }
    }

    private static KafkaConsumer<byte[], byte[]> consumer(JsonNode cmd) {
        Properties p = props(cmd);
        p.put("key.deserializer", ByteArrayDeserializer.class.getName());
        p.put("value.deserializer", ByteArrayDeserializer.class.getName());
        p.put("isolation.level", cmd.path("isolation_level").asText("read_uncommitted"));
        p.put("enable.auto.commit", "false");
        p.put("auto.offset.reset", "earliest");
        if (cmd.hasNonNull("group")) {
            p.put("group.id", cmd.get("group").asText());
            p.put("partition.assignment.strategy", assignor(cmd.path("assignor").asText("range")));
        }
        return new KafkaConsumer<>(p);
    }

    private static String assignor(String name) {
        switch (name) {
            case "range": return "org.apache.kafka.clients.consumer.RangeAssignor";
            case "roundrobin": return "org.apache.kafka.clients.consumer.RoundRobinAssignor";
            case "sticky": return "org.apache.kafka.clients.consumer.StickyAssignor";
            case "cooperative-sticky": return "org.apache.kafka.clients.consumer.CooperativeStickyAssignor";
            default: throw new IllegalArgumentException("unknown assignor " + name);
        }
    }

    private static void addRecord(ArrayNode out, ConsumerRecord<byte[], byte[]> r) {
        ObjectNode o = out.addObject();
        o.put("topic", r.topic());
        o.put("partition", r.partition());
        o.put("offset", r.offset());
        putBytes(o, "key", r.key());
        putBytes(o, "value", r.value());
        ArrayNode hs = o.putArray("headers");
        for (Header h : r.headers()) {
            ArrayNode pair = hs.addArray();
            pair.add(h.key());
            if (h.value() == null) pair.addNull(); else pair.add(B64.encodeToString(h.value()));
        }
        o.put("timestamp", r.timestamp());
        o.put("timestamp_type", r.timestampType().name);
    }

    private static void consume(JsonNode cmd, ObjectNode reply) {
        String topic = cmd.path("topic").asText();
        ArrayNode records = reply.putArray("records");
        long deadline = System.currentTimeMillis() + cmd.path("timeout_ms").asLong(30000);
        try (KafkaConsumer<byte[], byte[]> c = consumer(cmd)) {
            if (cmd.hasNonNull("group")) {
                int want = cmd.path("count").asInt();
                c.subscribe(List.of(topic));
                while (records.size() < want && System.currentTimeMillis() < deadline) {
                    for (ConsumerRecord<byte[], byte[]> r : c.poll(Duration.ofMillis(200))) addRecord(records, r);
                }
                c.commitSync();
                return;
            }
            List<TopicPartition> tps = new ArrayList<>();
            for (JsonNode p : cmd.path("partitions")) tps.add(new TopicPartition(topic, p.asInt()));
            c.assign(tps);
            c.seekToBeginning(tps);
            // The end offsets this isolation level sees (the last stable offset for read_committed).
            Map<TopicPartition, Long> end = c.endOffsets(tps);
            ObjectNode ends = reply.putObject("end_offsets");
            for (TopicPartition tp : tps) ends.put(Integer.toString(tp.partition()), end.get(tp));
            while (!reached(c, end)) {
                if (System.currentTimeMillis() > deadline) throw new IllegalStateException("timed out before " + end);
                for (ConsumerRecord<byte[], byte[]> r : c.poll(Duration.ofMillis(200))) addRecord(records, r);
            }
        }
    }

    private static boolean reached(KafkaConsumer<byte[], byte[]> c, Map<TopicPartition, Long> end) {
        for (Map.Entry<TopicPartition, Long> e : end.entrySet()) {
            if (c.position(e.getKey()) < e.getValue()) return false;
        }
        return true;
    }

    private static void committed(JsonNode cmd, ObjectNode reply) throws Exception {
        ArrayNode out = reply.putArray("offsets");
        try (Admin admin = Admin.create(props(cmd))) {
            Map<TopicPartition, OffsetAndMetadata> got = admin.listConsumerGroupOffsets(cmd.path("group").asText())
                .partitionsToOffsetAndMetadata().get(30, TimeUnit.SECONDS);
            for (Map.Entry<TopicPartition, OffsetAndMetadata> e : got.entrySet()) {
                if (e.getValue() == null) continue;
                ObjectNode o = out.addObject();
                o.put("topic", e.getKey().topic());
                o.put("partition", e.getKey().partition());
                o.put("offset", e.getValue().offset());
                o.put("metadata", e.getValue().metadata());
            }
        }
    }

    /** A group member polling in its own thread; what it owns is published after each callback. */
    private static final class Member implements ConsumerRebalanceListener {
        final String name;
        final Thread thread;
        private final JsonNode cmd;
        private final AtomicBoolean stopping = new AtomicBoolean();
        private final Set<TopicPartition> owned = ConcurrentHashMap.newKeySet();
        private volatile int generation = -1;
        private volatile String error;

        Member(JsonNode cmd) {
            this.cmd = cmd;
            this.name = cmd.path("name").asText();
            this.thread = new Thread(this::run, "member-" + name);
        }

        private void run() {
            try (KafkaConsumer<byte[], byte[]> c = consumer(cmd)) {
                c.subscribe(List.of(cmd.path("topic").asText()), this);
                while (!stopping.get()) {
                    c.poll(Duration.ofMillis(100));
                    generation = c.groupMetadata().generationId();
                }
            } catch (Exception e) {
                error = e.toString();
            }
        }

        // Cooperative (KIP-429): revoked and assigned name only the partitions that move.
        @Override public void onPartitionsRevoked(Collection<TopicPartition> revoked) {
            owned.removeAll(revoked);
        }

        @Override public void onPartitionsAssigned(Collection<TopicPartition> assigned) {
            owned.addAll(assigned);
        }

        @Override public void onPartitionsLost(Collection<TopicPartition> lost) {
            owned.removeAll(lost);
        }

        void stop() throws InterruptedException {
            stopping.set(true);
            thread.join(30000);
        }

        void describe(ObjectNode reply) {
            ArrayNode a = reply.putArray("assignment");
            Set<TopicPartition> snapshot = new HashSet<>(owned);
            for (TopicPartition tp : snapshot) a.addArray().add(tp.topic()).add(tp.partition());
            reply.put("generation", generation);
            if (error != null) reply.put("error", error); else reply.putNull("error");
        }
    }
}
