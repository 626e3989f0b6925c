package org.agrilake.spark;

import java.lang.reflect.Method;
import java.security.MessageDigest;
import java.nio.charset.StandardCharsets;
import java.util.Set;

import org.apache.spark.sql.AnalysisException;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.SparkSessionExtensions;
import org.apache.spark.sql.catalyst.expressions.CallMethodViaReflection;
import org.apache.spark.sql.catalyst.expressions.Expression;
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
 * Delta tables, reflection ({@code reflect}, {@code java_method}), and user code (UDFs, pandas/Arrow
 * functions, closures).
 *
 * <p>The catalog's own registration (agrilake's refresh) is the one writer: it sets the session conf
 * {@code spark.agrilake.catalog.admin} to the token this JVM was started with (environment variable
 * {@code AGRILAKE_CATALOG_ADMIN_TOKEN}, random per process or server start, never in a command line).
 * Without the variable nothing can write.
 */
public final class ReadOnlyCatalog implements Function1<SparkSessionExtensions, BoxedUnit> {

    static final String ADMIN_CONF = "spark.agrilake.catalog.admin";
    static final String ADMIN_ENV = "AGRILAKE_CATALOG_ADMIN_TOKEN";
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
            if (!admin(session)) {
                plan.foreachWithSubqueries(node -> {
                    check((LogicalPlan) node);
                    return BoxedUnit.UNIT;
                });
            }
            return BoxedUnit.UNIT;
        });
        return BoxedUnit.UNIT;
    }

    static boolean admin(SparkSession session) {
        String expected = System.getenv(ADMIN_ENV);
        if (expected == null || expected.isEmpty()) {
            return false;
        }
        String given = session.conf().get(ADMIN_CONF, "");
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
