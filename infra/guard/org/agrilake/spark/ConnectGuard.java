package org.agrilake.spark;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;

import org.apache.spark.connect.proto.AnalyzePlanRequest;
import org.apache.spark.connect.proto.Catalog;
import org.apache.spark.connect.proto.Command;
import org.apache.spark.connect.proto.CommonInlineUserDefinedFunction;
import org.apache.spark.connect.proto.ConfigRequest;
import org.apache.spark.connect.proto.ConfigResponse;
import org.apache.spark.connect.proto.ExecutePlanRequest;
import org.apache.spark.connect.proto.KeyValue;
import org.apache.spark.connect.proto.MlCommand;
import org.apache.spark.connect.proto.Plan;
import org.apache.spark.connect.proto.Read;
import org.apache.spark.connect.proto.RelationChanges;
import org.apache.spark.sql.connect.utils.ErrorUtils;
import org.apache.spark.sql.connect.utils.PlanCompressionUtils;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import org.sparkproject.connect.grpc.ForwardingServerCall.SimpleForwardingServerCall;
import org.sparkproject.connect.grpc.ForwardingServerCallListener.SimpleForwardingServerCallListener;
import org.sparkproject.connect.grpc.Metadata;
import org.sparkproject.connect.grpc.ServerCall;
import org.sparkproject.connect.grpc.ServerCallHandler;
import org.sparkproject.connect.grpc.ServerInterceptor;
import org.sparkproject.connect.grpc.Status;
import org.sparkproject.connect.protobuf.Descriptors.FieldDescriptor;
import org.sparkproject.connect.protobuf.Message;

/**
 * The SQL endpoint runs no client code: a gRPC interceptor of the Spark Connect server
 * ({@code spark.connect.grpc.interceptor.classes}) that reads every request before Spark does.
 *
 * <p>Why not the analyser check of {@link ReadOnlyCatalog} alone: much of what a Connect client sends
 * never becomes an analysed plan, or runs the client's code before it does. An uploaded jar joins the
 * session's class path; registering a Java UDF instantiates its class (its constructor runs in the
 * server); a Python data source runs its {@code schema()} while the plan is built; a Scala UDF is a
 * Java-serialised object the planner deserialises; a streaming query is started by a command of its own
 * and {@code foreachBatch} runs a Python function in the server; a runtime setting such as
 * {@code spark.sql.catalog.<name>} loads a class of the client's choosing. The interceptor refuses:
 * <ul>
 *   <li>artifacts ({@code AddArtifacts}, {@code ArtifactStatus}): jars, Python files, archives, files,
 *       and the cached local relations of large {@code createDataFrame}s;</li>
 *   <li>user code anywhere in a plan: Python, Scala and Java UDFs (registered or inline, incl.
 *       mapInPandas, applyInPandas and typed aggregations), Python UDTFs and data sources, Spark ML;</li>
 *   <li>every streaming query: streaming reads, {@code writeStream.start()} (incl. foreach and
 *       foreachBatch), streaming query and listener commands;</li>
 *   <li>every command but SQL and the DataFrame writes, views and merges the analyser check decides on;
 *       catalog calls that change state (create, drop, cache, truncate, recover, analyse);</li>
 *   <li>runtime settings not on {@link #SETTABLE}: {@code spark.conf.set} / {@code unset} is refused,
 *       a session's builder options (sent "silently") are dropped with a warning to the client.</li>
 * </ul>
 * Each refusal reaches the client as an analysis error saying what was refused and why, and the server's
 * log as a warning. Compressed plans are read decompressed, as the server will run them.
 */
public final class ConnectGuard implements ServerInterceptor {

    private static final Logger LOG = LoggerFactory.getLogger(ConnectGuard.class);

    /**
     * The runtime settings a client may change: presentation and performance of its own queries, none
     * that names a class, a path, a catalog or a security control. docs/querying.md lists them (a test
     * compares the two).
     */
    static final Set<String> SETTABLE = Set.of(
            "spark.sql.session.timeZone", "spark.sql.ansi.enabled", "spark.sql.caseSensitive",
            "spark.sql.shuffle.partitions", "spark.sql.adaptive.enabled", "spark.sql.autoBroadcastJoinThreshold",
            "spark.sql.files.maxPartitionBytes", "spark.sql.datetime.java8API.enabled", "spark.sql.timestampType",
            "spark.sql.execution.arrow.maxRecordsPerBatch", "spark.sql.execution.pandas.convertToArrowArraySafely",
            "spark.sql.repl.eagerEval.enabled", "spark.sql.repl.eagerEval.maxNumRows",
            "spark.sql.repl.eagerEval.truncate",
            // the catalog's tokens, which the analyser check compares (ReadOnlyCatalog)
            ReadOnlyCatalog.ADMIN_CONF, ReadOnlyCatalog.OPERATOR_CONF);

    /** Commands whose effect the analyser check decides on (their plans are analysed before they run). */
    static final Set<Command.CommandTypeCase> COMMANDS = Set.of(
            Command.CommandTypeCase.SQL_COMMAND, Command.CommandTypeCase.WRITE_OPERATION,
            Command.CommandTypeCase.WRITE_OPERATION_V2, Command.CommandTypeCase.CREATE_DATAFRAME_VIEW,
            Command.CommandTypeCase.MERGE_INTO_TABLE_COMMAND, Command.CommandTypeCase.GET_RESOURCES_COMMAND,
            Command.CommandTypeCase.REMOVE_CACHED_REMOTE_RELATION_COMMAND);

    /** What pyspark sends of Spark ML at every session's end: no model, no code. */
    static final Set<MlCommand.CommandCase> ML_HOUSEKEEPING = Set.of(
            MlCommand.CommandCase.CLEAN_CACHE, MlCommand.CommandCase.GET_CACHE_INFO);

    /** Catalog calls that only read. */
    static final Set<Catalog.CatTypeCase> CATALOG_READS = Set.of(
            Catalog.CatTypeCase.CURRENT_DATABASE, Catalog.CatTypeCase.SET_CURRENT_DATABASE,
            Catalog.CatTypeCase.LIST_DATABASES, Catalog.CatTypeCase.LIST_TABLES, Catalog.CatTypeCase.LIST_FUNCTIONS,
            Catalog.CatTypeCase.LIST_COLUMNS, Catalog.CatTypeCase.GET_DATABASE, Catalog.CatTypeCase.GET_TABLE,
            Catalog.CatTypeCase.GET_FUNCTION, Catalog.CatTypeCase.DATABASE_EXISTS, Catalog.CatTypeCase.TABLE_EXISTS,
            Catalog.CatTypeCase.FUNCTION_EXISTS, Catalog.CatTypeCase.IS_CACHED, Catalog.CatTypeCase.REFRESH_TABLE,
            Catalog.CatTypeCase.CURRENT_CATALOG, Catalog.CatTypeCase.SET_CURRENT_CATALOG,
            Catalog.CatTypeCase.LIST_CATALOGS, Catalog.CatTypeCase.LIST_PARTITIONS, Catalog.CatTypeCase.LIST_VIEWS,
            Catalog.CatTypeCase.GET_TABLE_PROPERTIES, Catalog.CatTypeCase.GET_CREATE_TABLE_STRING);

    /** Plan messages that carry user code, whatever their position (full protobuf names). */
    static final Map<String, String> USER_CODE = Map.of(
            "spark.connect.PythonUDF", "a Python UDF",
            "spark.connect.ScalarScalaUDF", "a Scala UDF (a serialised closure)",
            "spark.connect.JavaUDF", "a Java UDF",
            "spark.connect.CommonInlineUserDefinedTableFunction", "a Python UDTF",
            "spark.connect.PythonUDTF", "a Python UDTF",
            "spark.connect.CommonInlineUserDefinedDataSource", "a Python data source",
            "spark.connect.PythonDataSource", "a Python data source",
            "spark.connect.MlCommand", "Spark ML (models are code and files of the server)",
            "spark.connect.MlRelation", "Spark ML (models are code and files of the server)");

    static final String DOCS = "docs/querying.md, \"What the SQL endpoint refuses\"";

    @Override
    public <Q, R> ServerCall.Listener<Q> interceptCall(ServerCall<Q, R> call, Metadata headers,
                                                      ServerCallHandler<Q, R> next) {
        Guarded<Q, R> guarded = new Guarded<>(call);
        String method = call.getMethodDescriptor().getBareMethodName();
        if ("AddArtifacts".equals(method) || "ArtifactStatus".equals(method)) {
            // Refused before the handler exists: it would stage the upload in a folder of its own.
            guarded.refuse("", "", userCode("an artifact upload (" + method + ": a jar, Python file, archive or file,"
                    + " or a large local DataFrame)"));
            return new ServerCall.Listener<>() {};
        }
        return new SimpleForwardingServerCallListener<Q>(next.startCall(guarded, headers)) {
            private boolean refused;

            @Override
            public void onMessage(Q message) {
                if (refused) {
                    return;
                }
                String session = "";
                String user = "";
                Object forwarded = message;
                List<String> problems = new ArrayList<>();
                try {
                    if (message instanceof ConfigRequest request) {
                        session = request.getSessionId();
                        user = request.getUserContext().getUserId();
                        forwarded = settings(request, problems, guarded.warnings);
                    } else if (message instanceof ExecutePlanRequest request) {
                        session = request.getSessionId();
                        user = request.getUserContext().getUserId();
                        walk(request, problems);
                    } else if (message instanceof AnalyzePlanRequest request) {
                        session = request.getSessionId();
                        user = request.getUserContext().getUserId();
                        walk(request, problems);
                    } else if (message instanceof Message other) {
                        walk(other, problems);
                    }
                } catch (RuntimeException | StackOverflowError e) {
                    // What cannot be read cannot be checked: refused, never passed on unread.
                    problems.add(0, "agrilake's SQL endpoint refused a request it could not read ("
                            + e.getClass().getSimpleName() + ")");
                }
                if (!problems.isEmpty()) {
                    refused = true;
                    guarded.refuse(user, session, problems.get(0));
                    return;
                }
                @SuppressWarnings("unchecked")
                Q cast = (Q) forwarded;
                super.onMessage(cast);
            }

            @Override
            public void onHalfClose() {
                if (!refused) {
                    super.onHalfClose();
                }
            }
        };
    }

    /** The request to forward; a refusal in `problems` for a set or unset of a key not on the list. */
    static ConfigRequest settings(ConfigRequest request, List<String> problems, List<String> warnings) {
        ConfigRequest.Operation operation = request.getOperation();
        if (operation.hasSet()) {
            ConfigRequest.Set set = operation.getSet();
            Set<String> refused = new TreeSet<>();
            List<KeyValue> kept = new ArrayList<>();
            for (KeyValue pair : set.getPairsList()) {
                if (SETTABLE.contains(pair.getKey())) {
                    kept.add(pair);
                } else {
                    refused.add(pair.getKey());
                }
            }
            if (refused.isEmpty()) {
                return request;
            }
            if (!set.getSilent()) {
                problems.add(setting("a change of " + String.join(", ", refused)));
                return request;
            }
            // A session builder's options (spark.app.name...) come silently: the session still opens.
            for (String key : refused) {
                String warning = "agrilake's SQL endpoint ignored " + key + ": not a runtime setting a client may"
                        + " change here (" + DOCS + " lists them)";
                warnings.add(warning);
                LOG.warn(warning);
            }
            ConfigRequest.Set.Builder only = set.toBuilder().clearPairs().addAllPairs(kept);
            return request.toBuilder().setOperation(operation.toBuilder().setSet(only)).build();
        }
        if (operation.hasUnset()) {
            Set<String> refused = new TreeSet<>();
            for (String key : operation.getUnset().getKeysList()) {
                if (!SETTABLE.contains(key)) {
                    refused.add(key);
                }
            }
            if (!refused.isEmpty()) {
                problems.add(setting("an unset of " + String.join(", ", refused)));
            }
        }
        return request;
    }

    static String setting(String what) {
        return "agrilake's SQL endpoint refused " + what + ": a runtime setting can load a class (spark.sql.catalog.*"
                + " names a catalog plugin), point at files or turn a check off, so a client may change only the"
                + " settings listed in " + DOCS;
    }

    /** Every refusal among the fields of `message`, recursively (compressed plans decompressed). */
    static void walk(Message message, List<String> problems) {
        if (!problems.isEmpty()) {
            return;
        }
        if (message instanceof MlCommand ml && ML_HOUSEKEEPING.contains(ml.getCommandCase())) {
            return;  // every client's exit cleans its (here always empty) model cache
        }
        String type = message.getDescriptorForType().getFullName();
        String code = USER_CODE.get(type);
        if (code != null) {
            problems.add(userCode(code));
            return;
        }
        if (message instanceof Plan plan && plan.getOpTypeCase() == Plan.OpTypeCase.COMPRESSED_OPERATION) {
            walk(PlanCompressionUtils.decompressPlan(plan), problems);
            return;
        }
        if (message instanceof CommonInlineUserDefinedFunction udf) {
            problems.add(userCode(switch (udf.getFunctionCase()) {
                case PYTHON_UDF -> "a Python UDF";
                case JAVA_UDF -> "a Java UDF";
                case SCALAR_SCALA_UDF -> "a Scala UDF (a serialised closure)";
                default -> "a user-defined function";
            } + (udf.getFunctionName().isEmpty() ? "" : " " + udf.getFunctionName())));
            return;
        }
        if (message instanceof Command command && !COMMANDS.contains(command.getCommandTypeCase())
                && !(command.hasMlCommand() && ML_HOUSEKEEPING.contains(command.getMlCommand().getCommandCase()))) {
            String name = command.getCommandTypeCase().name().toLowerCase(java.util.Locale.ROOT);
            if (name.startsWith("register") || name.equals("ml_command")) {
                fields(message, problems);  // names what it is: a Java UDF, a Python data source, Spark ML...
                if (!problems.isEmpty()) {
                    return;
                }
            }
            problems.add(name.startsWith("write_stream") || name.startsWith("streaming")
                    ? streaming(name.startsWith("write_stream") ? "writeStream.start() (" + name + ": any sink, foreach,"
                            + " foreachBatch)" : "the command " + name)
                    : "agrilake's SQL endpoint refused the command " + name + ": only SQL and the DataFrame"
                            + " operations of the read-only analyst session run here (" + DOCS + ")");
            return;
        }
        if ((message instanceof Read read && read.getIsStreaming())
                || (message instanceof RelationChanges changes && changes.getIsStreaming())) {
            problems.add(streaming("a streaming read (spark.readStream)"));
            return;
        }
        if (message instanceof Catalog catalog && !CATALOG_READS.contains(catalog.getCatTypeCase())) {
            problems.add("agrilake's SQL is read-only: refused the catalog call "
                    + catalog.getCatTypeCase().name().toLowerCase(java.util.Locale.ROOT)
                    + ": the pipeline is the lakehouse's only writer, and the catalog's registration its own ("
                    + DOCS + ")");
            return;
        }
        fields(message, problems);
    }

    static void fields(Message message, List<String> problems) {
        for (Map.Entry<FieldDescriptor, Object> field : message.getAllFields().entrySet()) {
            if (field.getValue() instanceof Message child) {
                walk(child, problems);
            } else if (field.getValue() instanceof List<?> values) {
                for (Object value : values) {
                    if (value instanceof Message child) {
                        walk(child, problems);
                    }
                }
            }
        }
    }

    static String userCode(String what) {
        return "agrilake's SQL endpoint runs no client code: refused " + what + ". Code a client sends would run in"
                + " the server, beside the catalog and every other client's session; query the registered tables with"
                + " SQL or DataFrame operations and Spark's built-in functions (" + DOCS + ")";
    }

    static String streaming(String what) {
        return "agrilake's SQL endpoint runs no streaming query: refused " + what + ". A streaming query writes"
                + " files and checkpoints and keeps running in the server; query the tables, whose Delta history"
                + " and time travel show every version (" + DOCS + ")";
    }

    /** The call as the client sees it: a refusal closes it once, with Spark's own error details. */
    static final class Guarded<Q, R> extends SimpleForwardingServerCall<Q, R> {
        final List<String> warnings = new ArrayList<>();
        private boolean closed;

        Guarded(ServerCall<Q, R> call) {
            super(call);
        }

        @Override
        public synchronized void close(Status status, Metadata trailers) {
            closed = true;
            super.close(status, trailers);
        }

        @Override
        public void sendMessage(R message) {
            if (!warnings.isEmpty() && message instanceof ConfigResponse response) {
                @SuppressWarnings("unchecked")
                R warned = (R) response.toBuilder().addAllWarnings(warnings).build();
                super.sendMessage(warned);
                return;
            }
            super.sendMessage(message);
        }

        synchronized void refuse(String user, String session, String why) {
            if (closed) {
                return;  // already answered, e.g. UNAUTHENTICATED
            }
            LOG.warn("refused for session {}: {}", session, why);
            ErrorUtils.handleError("agrilake guard", this, user, session)
                    .apply(new ReadOnlyCatalog.ReadOnlyViolation(why));
        }
    }
}
