// Connects with one JDBC URL and prints what PostgreSQL saw, or the driver's error.
// Run as a single-file source program: java -cp postgresql.jar JdbcProbe.java URL
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.ResultSet;

public class JdbcProbe {
    public static void main(String[] args) {
        try (Connection c = DriverManager.getConnection(args[0])) {
            ResultSet rs = c.createStatement().executeQuery(
                "SELECT ssl, coalesce(client_dn, ''), current_user FROM pg_stat_ssl WHERE pid = pg_backend_pid()");
            rs.next();
            System.out.println("OK " + rs.getBoolean(1) + " " + rs.getString(2) + " " + rs.getString(3));
        } catch (Exception e) {
            Throwable t = e;
            while (t.getCause() != null) {
                t = t.getCause();
            }
            System.out.println("FAIL " + e.getMessage() + " | " + t);
            System.exit(1);
        }
    }
}
