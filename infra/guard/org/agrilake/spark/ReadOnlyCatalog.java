package org.agrilake.spark;

import java.lang.reflect.Method;
import java.security.MessageDigest;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.Locale;
import java.util.Set;
import java.util.stream.Collectors;

import org.apache.spark.sql.AnalysisException;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.SparkSessionExtensions;
import org.apache.spark.sql.catalyst.FunctionIdentifier;
import org.apache.spark.sql.catalyst.expressions.CallMethodViaReflection;
import org.apache.spark.sql.catalyst.expressions.Expression;
import org.apache.spark.sql.catalyst.expressions.ScalaUDF;
import org.apache.spark.sql.catalyst.expressions.UserDefinedExpression;
import org.apache.spark.sql.catalyst.plans.logical.Command;
import org.apache.spark.sql.catalyst.plans.logical.LogicalPlan;
import org.apache.spark.sql.connector.catalog.Identifier;
import org.apache.spark.sql.execution.datasources.HadoopFsRelation;
import org.apache.spark.sql.execution.datasources.LogicalRelation;
import org.apache.spark.sql.execution.datasources.v2.DataSourceV2Relation;

import scala.Function1;
import scala.runtime.BoxedUnit;

/**
 * The analyst side of the lakehouse is read-only, decided on Spark's analysed plan (not on keywords).
 *
 * <p>Installed with {@code spark.sql.extensions} in the analyst sessions only (agrilake sql, catalog,
 * tables, describe, and the SQL server): every plan any client sends, SQL text or Spark Connect
 * DataFrame, is refused unless it is a query over the registered tables or a read-only command
 * (SHOW, DESCRIBE, EXPLAIN, USE). Refused: commands that write or change anything (INSERT, MERGE,
 * CREATE, SET, CACHE...), file sources ({@code csv.`/path`}, {@code spark.read.text}), path-addressed
 * Delta tables, reflection ({@code reflect}, {@code java_method}), user code (UDFs, functions a session
 * registered, pandas/Arrow functions, closures) and streaming queries. The SQL server also refuses, before
 * Spark reads a request, what would run a client's code before any plan is analysed ({@link ConnectGuard}).
 *
 * <p>The catalog's own registration (agrilake's refresh) is the one writer: it sets the session conf
 * {@code spark.agrilake.catalog.admin} to the token this JVM was started with (environment variable
 * {@code AGRILAKE_CATALOG_ADMIN_TOKEN}, random per process or server start, never in a command line).
 * Without the variable nothing can write.
 *
 * <p>Who reads what: the tables listed in {@code AGRILAKE_CATALOG_RESTRICTED} (set by agrilake when it
 * starts the JVM; {@code bronze.*} and {@code ops.quarantine_raw} when absent: the layer and the table that
 * hold personal data in clear) are read only by operators, the sessions whose conf
 * {@code spark.agrilake.catalog.operator} holds the token in {@code AGRILAKE_CATALOG_OPERATOR_TOKEN}.
 * Checked on every relation of the plan, views' bodies included.
 */
public final class ReadOnlyCatalog implements Function1<SparkSessionExtensions, BoxedUnit> {

    static final String ADMIN_CONF = "spark.agrilake.catalog.admin";
    static final String ADMIN_ENV = "AGRILAKE_CATALOG_ADMIN_TOKEN";
    static final String OPERATOR_CONF = "spark.agrilake.catalog.operator";
    static final String OPERATOR_ENV = "AGRILAKE_CATALOG_OPERATOR_TOKEN";
    static final String RESTRICTED_ENV = "AGRILAKE_CATALOG_RESTRICTED";
    static final String RESTRICTED_DEFAULT = "bronze.*,ops.quarantine_raw";
    static final Set<String> LAYERS = Set.of("bronze", "silver", "gold", "ops");

    /** Commands that only read metadata or plans (simple class names, V1 and V2 forms). */
    static final Set<String> READ_ONLY_COMMANDS = Set.of(
            "ShowTables", "ShowTablesExtended", "ShowTablesCommand", "ShowNamespaces", "ShowColumns",
            "ShowColumnsCommand", "ShowTableProperties", "ShowTablePropertiesCommand", "ShowCreateTable",
            "ShowCreateTableCommand", "ShowFunctions", "ShowFunctionsCommand", "ShowViews", "ShowViewsCommand",
            "ShowPartitions", "ShowPartitionsCommand", "ShowCatalogsCommand", "ShowCurrentNamespaceCommand",
            "DescribeRelation", "DescribeTableCommand", "DescribeColumn", "DescribeColumnCommand",
            "DescribeNamespace", "DescribeDatabaseCommand", "DescribeFunction", "DescribeFunctionCommand",
            "DescribeQueryCommand", "DescribeDeltaHistory", "DescribeDeltaHistoryCommand",
            "DescribeDeltaDetailCommand", "ExplainCommand", "SetCatalogAndNamespace", "SetCatalogCommand",
            "SetNamespaceCommand");

    @Override
    public BoxedUnit apply(SparkSessionExtensions extensions) {
        extensions.injectCheckRule(session -> plan -> {
            if (!holds(session, ADMIN_ENV, ADMIN_CONF)) {
                Set<String> restricted = holds(session, OPERATOR_ENV, OPERATOR_CONF) ? Set.of() : restricted();
                if (plan.isStreaming()) {
                    refuse("a streaming query: it writes files and checkpoints and keeps running in the server");
                }
                plan.foreachWithSubqueries(node -> {
                    check((LogicalPlan) node);
                    registered(session, (LogicalPlan) node);
                    readable((LogicalPlan) node, restricted);
                    return BoxedUnit.UNIT;
                });
            }
            return BoxedUnit.UNIT;
        });
        return BoxedUnit.UNIT;
    }

    static Set<String> restricted() {
        String listed = System.getenv(RESTRICTED_ENV);
        String spec = listed == null || listed.isBlank() ? RESTRICTED_DEFAULT : listed;
        return Arrays.stream(spec.split(",")).map(t -> t.trim().toLowerCase(Locale.ROOT))
                .filter(t -> !t.isEmpty()).collect(Collectors.toUnmodifiableSet());
    }

    /** Refuses a read of a restricted table (by its catalog name, V1 or V2 form). */
    static void readable(LogicalPlan node, Set<String> restricted) {
        if (restricted.isEmpty()) {
            return;
        }
        String database = null;
        String table = null;
        if (node instanceof LogicalRelation relation && relation.catalogTable().isDefined()) {
            var id = relation.catalogTable().get().identifier();
            database = id.database().isDefined() ? id.database().get() : null;
            table = id.table();
        } else if (node instanceof DataSourceV2Relation relation && relation.identifier().isDefined()) {
            String[] namespace = relation.identifier().get().namespace();
            database = namespace.length == 1 ? namespace[0] : null;
            table = relation.identifier().get().name();
        }
        if (database == null) {
            return;
        }
        String db = database.toLowerCase(Locale.ROOT);
        String name = db + "." + table.toLowerCase(Locale.ROOT);
        if (restricted.contains(db + ".*") || restricted.contains(name)) {
            ReadOnlyCatalog.<RuntimeException>raise(new ReadOnlyViolation("agrilake's SQL: " + name
                    + " holds personal data in clear and is readable by the pipeline's operators only"
                    + (name.equals("ops.quarantine_raw") ? "; ops.quarantine has every quarantined row with its"
                            + " reason, file, line and the line's shape" : "; silver and gold hold it pseudonymised")
                    + ". Operators: agrilake sql --operator (see docs/querying.md)."));
        }
    }

    static boolean holds(SparkSession session, String env, String conf) {
        String expected = System.getenv(env);
        if (expected == null || expected.isEmpty()) {
            return false;
        }
        String given = session.conf().get(conf, "");
        return MessageDigest.isEqual(expected.getBytes(StandardCharsets.UTF_8), given.getBytes(StandardCharsets.UTF_8));
    }

    static void check(LogicalPlan node) {
        String name = node.getClass().getSimpleName();
        if (node instanceof Command && !READ_ONLY_COMMANDS.contains(name)) {
            refuse("a statement that changes the lakehouse or the session (" + name + ")");
        }
        if (name.contains("Python") || name.contains("Pandas") || name.contains("Arrow") || name.endsWith("InR") || name.contains("InRWith")) {
            refuse("user code (" + name + ")");
        }
        userCode(node, name);
        if (node instanceof LogicalRelation relation && relation.catalogTable().isEmpty()) {
            // Delta replays its own transaction log through file relations of its own index; everything
            // else without a catalog table is a file read by path.
            boolean deltaLog = relation.relation() instanceof HadoopFsRelation fs
                    && fs.location().getClass().getName().equals("org.apache.spark.sql.delta.DeltaLogFileIndex");
            if (!deltaLog) {
                refuse("a read of files by path (" + relation.relation().getClass().getSimpleName()
                        + "); query the registered tables: SHOW TABLES IN gold");
            }
        }
        if (node instanceof DataSourceV2Relation relation) {
            boolean registered = relation.identifier().isDefined() && layer(relation.identifier().get());
            if (!registered) {
                refuse("a table that is not one of the registered layers bronze, silver, gold, ops");
            }
        }
        scala.collection.Iterator<Expression> expressions = node.expressions().iterator();
        while (expressions.hasNext()) {
            expressions.next().foreach(e -> {
                if (e instanceof CallMethodViaReflection || e.getClass().getSimpleName().equals("TryReflect")) {
                    refuse("reflection (reflect, java_method, try_reflect)");
                }
                if (e instanceof UserDefinedExpression) {
                    userCode(e, e.getClass().getSimpleName());
                }
                return BoxedUnit.UNIT;
            });
        }
    }

    /**
     * Refuses a function a session registered (a Java UDF's class, loaded and run here): its ScalaUDF wraps
     * the instance in Spark's own closure, which the class-name test of {@link #userCode} cannot tell apart.
     */
    static void registered(SparkSession session, LogicalPlan node) {
        scala.collection.Iterator<Expression> expressions = node.expressions().iterator();
        while (expressions.hasNext()) {
            expressions.next().foreach(e -> {
                if (e instanceof ScalaUDF udf && udf.udfName().isDefined() && ((org.apache.spark.sql.classic.SparkSession)
                        session).sessionState().catalog().isTemporaryFunction(new FunctionIdentifier(udf.udfName().get()))) {
                    refuse("user code (the registered function " + udf.udfName().get() + ")");
                }
                return BoxedUnit.UNIT;
            });
        }
    }

    static boolean layer(Identifier identifier) {
        String[] namespace = identifier.namespace();
        return namespace.length == 1 && LAYERS.contains(namespace[0].toLowerCase(java.util.Locale.ROOT));
    }

    /** A node or expression carrying a function object: Spark's and Delta's own are fine, any other is user code. */
    static void userCode(Object node, String name) {
        for (String accessor : new String[] {"func", "function", "udf", "aggregator"}) {
            Object fn;
            try {
                Method method = node.getClass().getMethod(accessor);
                if (method.getParameterCount() != 0) {
                    continue;
                }
                fn = method.invoke(node);
            } catch (NoSuchMethodException e) {
                continue;
            } catch (ReflectiveOperationException e) {
                refuse("user code (" + name + ")");
                return;
            }
            if (fn != null && !fn.getClass().getName().startsWith("org.apache.spark.")) {
                refuse("user code (" + name + ": " + fn.getClass().getName() + ")");
            }
        }
        if (name.startsWith("Python") || name.equals("ScalaUDAF")) {
            refuse("user code (" + name + ")");
        }
    }

    static void refuse(String what) {
        ReadOnlyCatalog.<RuntimeException>raise(new ReadOnlyViolation("agrilake's SQL is read-only: refused " + what
                + ". Only queries over the registered tables (bronze, silver, gold, ops) and SHOW, DESCRIBE,"
                + " EXPLAIN, USE run here; the pipeline is the lakehouse's only writer."));
    }

    /** AnalysisException is checked in Java; Scala code (the analyser) throws it from anywhere. */
    @SuppressWarnings("unchecked")
    static <T extends Throwable> void raise(Throwable error) throws T {
        throw (T) error;
    }

    /** An analysis error, so that every client reports it like any other invalid statement. */
    static final class ReadOnlyViolation extends AnalysisException {
        ReadOnlyViolation(String message) {
            super(message, scala.Option.empty(), scala.Option.empty(), scala.Option.empty(), scala.Option.empty(),
                    scala.collection.immutable.Map$.MODULE$.<String, String>empty(), new org.apache.spark.QueryContext[0]);
        }
    }
}
