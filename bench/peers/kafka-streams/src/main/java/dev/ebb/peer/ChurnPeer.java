package dev.ebb.peer;

import java.io.File;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.time.Instant;
import java.time.LocalDate;
import java.time.ZoneId;
import java.util.HashMap;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.CountDownLatch;

import org.apache.avro.Schema;
import org.apache.avro.generic.GenericDatumReader;
import org.apache.avro.generic.GenericRecord;
import org.apache.avro.io.BinaryDecoder;
import org.apache.avro.io.DecoderFactory;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.common.utils.Bytes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.KeyValue;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.Topology;
import org.apache.kafka.streams.processor.PunctuationType;
import org.apache.kafka.streams.processor.api.Processor;
import org.apache.kafka.streams.processor.api.ProcessorContext;
import org.apache.kafka.streams.processor.api.Record;
import org.apache.kafka.streams.state.KeyValueIterator;
import org.apache.kafka.streams.state.KeyValueStore;
import org.apache.kafka.streams.state.Stores;

/**
 * The Kafka Streams peer of Ebb's benchmark: a minimal application that computes the same
 * default-topology signals and rules on the same input topic — local-day inactivity timers fired by
 * punctuation (inactive_7d), the unfollow ratio (unfollow_burst, at the event) and the consumption
 * drop (consumption_drop, at the user's local midnight) — with per-user state in a persistent
 * RocksDB store with a changelog, timers in a second store indexed by due time, exactly-once v2.
 * It leaves out what Ebb does beyond that (dedup, episodes across rules, the model, recall tasks):
 * the ratio in bench/README.md is read with that in mind.
 *
 * Usage: ChurnPeer BOOTSTRAP INPUT_TOPIC APPLICATION_ID STATE_DIR SCHEMA_FILE
 */
public final class ChurnPeer {
  static final int COUNT_DAYS = 36;
  static final int WEEK = 8;
  static final long LATENESS_MS = 5 * 60_000L;
  static final int NEVER = Integer.MIN_VALUE;
  static final String DEFAULT_ZONE = "Asia/Shanghai";

  public static void main(String[] args) throws Exception {
    String bootstrap = args[0], input = args[1], app = args[2], stateDir = args[3];
    Schema schema = new Schema.Parser().parse(new File(args[4]));
    Properties p = new Properties();
    p.put(StreamsConfig.APPLICATION_ID_CONFIG, app);
    p.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
    p.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, StreamsConfig.EXACTLY_ONCE_V2);
    p.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, 100);
    p.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, 1);
    p.put(StreamsConfig.STATE_DIR_CONFIG, stateDir);
    p.put(StreamsConfig.DEFAULT_KEY_SERDE_CLASS_CONFIG, Serdes.ByteArraySerde.class);
    p.put(StreamsConfig.DEFAULT_VALUE_SERDE_CLASS_CONFIG, Serdes.ByteArraySerde.class);
    p.put("consumer.auto.offset.reset", "earliest");

    Topology t = new Topology();
    t.addSource("events", input);
    t.addProcessor("churn", () -> new ChurnProcessor(schema), "events");
    t.addStateStore(Stores.keyValueStoreBuilder(Stores.persistentKeyValueStore("users"), Serdes.String(), Serdes.ByteArray()), "churn");
    t.addStateStore(Stores.keyValueStoreBuilder(Stores.persistentKeyValueStore("timers"), Serdes.Bytes(), Serdes.ByteArray()), "churn");
    t.addSink("alerts", app + ".alerts", "churn");

    KafkaStreams streams = new KafkaStreams(t, p);
    CountDownLatch stop = new CountDownLatch(1);
    Runtime.getRuntime().addShutdownHook(new Thread(() -> { streams.close(Duration.ofSeconds(30)); stop.countDown(); }));
    streams.start();
    stop.await();
  }

  /** One user's state: the same local-day rings Ebb keeps for these rules. */
  static final class UserState {
    String zone;
    int headDay = NEVER;
    int lastLoginDay = NEVER;
    int followedNow;
    long timerDue;
    int latched; // bit 0 inactive_7d, 1 unfollow_burst, 2 consumption_drop
    final int[] views = new int[COUNT_DAYS];
    final int[] follows = new int[WEEK];
    final int[] unfollows = new int[WEEK];

    byte[] encode() {
      byte[] z = zone.getBytes(StandardCharsets.UTF_8);
      ByteBuffer b = ByteBuffer.allocate(4 + z.length + 4 * 5 + 8 + 4 * (COUNT_DAYS + 2 * WEEK));
      b.putInt(z.length).put(z).putInt(headDay).putInt(lastLoginDay).putInt(followedNow).putInt(latched).putInt(0).putLong(timerDue);
      for (int v : views) b.putInt(v);
      for (int v : follows) b.putInt(v);
      for (int v : unfollows) b.putInt(v);
      return b.array();
    }

    static UserState decode(byte[] raw) {
      ByteBuffer b = ByteBuffer.wrap(raw);
      UserState s = new UserState();
      byte[] z = new byte[b.getInt()];
      b.get(z);
      s.zone = new String(z, StandardCharsets.UTF_8);
      s.headDay = b.getInt(); s.lastLoginDay = b.getInt(); s.followedNow = b.getInt(); s.latched = b.getInt(); b.getInt();
      s.timerDue = b.getLong();
      for (int i = 0; i < COUNT_DAYS; i++) s.views[i] = b.getInt();
      for (int i = 0; i < WEEK; i++) s.follows[i] = b.getInt();
      for (int i = 0; i < WEEK; i++) s.unfollows[i] = b.getInt();
      return s;
    }

    /** Moves the rings to `day`, clearing the days that passed without activity. */
    void advanceTo(int day) {
      if (headDay == NEVER) { headDay = day; return; }
      if (day <= headDay) return;
      int gap = Math.min(day - headDay, COUNT_DAYS);
      for (int i = 1; i <= gap; i++) {
        int d = headDay + i;
        views[Math.floorMod(d, COUNT_DAYS)] = 0;
        follows[Math.floorMod(d, WEEK)] = 0;
        unfollows[Math.floorMod(d, WEEK)] = 0;
      }
      headDay = day;
    }

    int sum(int[] ring, int today, int fromAgo, int toAgo) {
      int n = 0;
      for (int ago = fromAgo; ago <= toAgo; ago++) {
        int d = today - ago;
        if (d > headDay || d <= headDay - ring.length) continue;
        n += ring[Math.floorMod(d, ring.length)];
      }
      return n;
    }
  }

  static final class ChurnProcessor implements Processor<byte[], byte[], byte[], byte[]> {
    private final GenericDatumReader<GenericRecord> reader;
    private final Map<String, ZoneId> zones = new HashMap<>();
    private BinaryDecoder decoder;
    private GenericRecord reuse;
    private ProcessorContext<byte[], byte[]> ctx;
    private KeyValueStore<String, byte[]> users;
    private KeyValueStore<Bytes, byte[]> timers;
    private long maxTs = Long.MIN_VALUE;

    ChurnProcessor(Schema schema) { this.reader = new GenericDatumReader<>(schema); }

    @Override
    public void init(ProcessorContext<byte[], byte[]> context) {
      ctx = context;
      users = context.getStateStore("users");
      timers = context.getStateStore("timers");
      // Timers are due by event time (the watermark: largest event time − lateness); punctuation
      // checks them every 100 ms of processing.
      context.schedule(Duration.ofMillis(100), PunctuationType.WALL_CLOCK_TIME, now -> fireDue());
    }

    ZoneId zone(String id) { return zones.computeIfAbsent(id, ZoneId::of); }

    int localDay(String zone, long ts) { return (int) Instant.ofEpochMilli(ts).atZone(zone(zone)).toLocalDate().toEpochDay(); }

    long startOfDay(String zone, int day) { return LocalDate.ofEpochDay(day).atStartOfDay(zone(zone)).toInstant().toEpochMilli(); }

    @Override
    public void process(Record<byte[], byte[]> r) {
      GenericRecord e;
      try {
        decoder = DecoderFactory.get().binaryDecoder(r.value(), decoder);
        e = reuse = reader.read(reuse, decoder);
      } catch (Exception bad) {
        return; // Ebb dead-letters these; the peer's input has none
      }
      String userId = e.get("userId").toString();
      String type = e.get("type").toString();
      long ts = (Long) e.get("ts");
      Object tz = e.get("tz");
      if (ts > maxTs) maxTs = ts;
      byte[] raw = users.get(userId);
      UserState s = raw == null ? new UserState() : UserState.decode(raw);
      if (s.zone == null) s.zone = tz == null ? DEFAULT_ZONE : tz.toString();
      int day = localDay(s.zone, ts);
      s.advanceTo(day);
      int slot = Math.floorMod(day, COUNT_DAYS);
      switch (type) {
        case "LOGIN" -> { if (day > s.lastLoginDay) s.lastLoginDay = day; s.latched = 0; }
        case "VIEW" -> s.views[slot]++;
        case "FOLLOW" -> { s.follows[Math.floorMod(day, WEEK)]++; s.followedNow++; }
        case "UNFOLLOW" -> { s.unfollows[Math.floorMod(day, WEEK)]++; if (s.followedNow > 0) s.followedNow--; }
        default -> { }
      }
      if (type.equals("FOLLOW") || type.equals("UNFOLLOW")) {
        int un = s.sum(s.unfollows, s.headDay, 0, 6);
        int base = s.followedNow + un - s.sum(s.follows, s.headDay, 0, 6);
        boolean on = base >= 4 && (double) un / base >= 0.5;
        rule(s, userId, 1, on, "unfollow_burst", ts);
      }
      if (s.timerDue == 0) arm(s, userId, startOfDay(s.zone, s.headDay + 1));
      users.put(userId, s.encode());
    }

    private void rule(UserState s, String userId, int bit, boolean on, String name, long at) {
      int m = 1 << bit;
      if (on && (s.latched & m) == 0) {
        s.latched |= m;
        ctx.forward(new Record<>(userId.getBytes(StandardCharsets.UTF_8), (userId + "," + name + "," + at).getBytes(StandardCharsets.UTF_8), at));
      } else if (!on) {
        s.latched &= ~m;
      }
    }

    private static Bytes timerKey(long due, String userId) {
      byte[] u = userId.getBytes(StandardCharsets.UTF_8);
      return Bytes.wrap(ByteBuffer.allocate(8 + u.length).putLong(due).put(u).array());
    }

    private void arm(UserState s, String userId, long due) {
      s.timerDue = due;
      timers.put(timerKey(due, userId), new byte[0]);
    }

    /** Fires every timer due by the watermark: each user's local midnight. */
    private void fireDue() {
      if (maxTs == Long.MIN_VALUE) return;
      long wm = maxTs - LATENESS_MS;
      java.util.List<KeyValue<Bytes, byte[]>> due = new java.util.ArrayList<>();
      try (KeyValueIterator<Bytes, byte[]> it = timers.range(null, timerKey(wm, "\uffff"))) {
        while (it.hasNext()) due.add(it.next());
      }
      for (KeyValue<Bytes, byte[]> kv : due) {
        timers.delete(kv.key);
        ByteBuffer b = ByteBuffer.wrap(kv.key.get());
        long at = b.getLong();
        String userId = new String(kv.key.get(), 8, kv.key.get().length - 8, StandardCharsets.UTF_8);
        byte[] raw = users.get(userId);
        if (raw == null) continue;
        UserState s = UserState.decode(raw);
        if (s.timerDue != at) continue;
        s.timerDue = 0;
        int today = Math.max(localDay(s.zone, at), s.headDay);
        if (s.lastLoginDay != NEVER) rule(s, userId, 0, today - s.lastLoginDay - 1 >= 7, "inactive_7d", at);
        // consumptionDrop over complete days before today: last 7 vs weekly average of the 28 before
        int recent = s.sum(s.views, today, 1, 7);
        double weekly = s.sum(s.views, today, 8, 35) / 4.0;
        rule(s, userId, 2, weekly >= 5 && 1 - recent / weekly >= 0.6, "consumption_drop", at);
        if (today - s.headDay < 9) arm(s, userId, startOfDay(s.zone, today + 1));
        users.put(userId, s.encode());
      }
    }
  }
}
