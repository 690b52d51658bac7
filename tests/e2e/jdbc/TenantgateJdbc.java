// PostgreSQL's JDBC driver, unchanged, through tenantgate's wire front end.
// Run by tests/e2e/test_pgwire_jdbc.py as a single-file program:
//   java -cp /usr/share/java/postgresql.jar TenantgateJdbc.java URL USER PASSWORD MARKER
// Prints one line per check: "name value".

import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.sql.Timestamp;

public class TenantgateJdbc {
    public static void main(String[] args) throws Exception {
        String url = args[0], user = args[1], password = args[2], marker = args[3];
        try (Connection conn = DriverManager.getConnection(url, user, password)) {
            System.out.println("product " + conn.getMetaData().getDatabaseProductName());
            // Server-side prepared after prepareThreshold (5) uses: run it more often.
            try (PreparedStatement select = conn.prepareStatement(
                    "SELECT ContactID, FirstName FROM Contacts WHERE ContactID = ?")) {
                int found = 0;
                for (int i = 1; i <= 8; i++) {
                    select.setInt(1, i);
                    try (ResultSet rs = select.executeQuery()) {
                        while (rs.next()) {
                            found += rs.getInt(1) == i ? 1 : 0;
                        }
                    }
                }
                System.out.println("selected " + found);
            }
            conn.setAutoCommit(false);
            try (PreparedStatement insert = conn.prepareStatement(
                    "INSERT INTO Contacts (FirstName, LastName, IsActive, CreatedAt) VALUES (?, ?, ?, ?)")) {
                for (String first : new String[] {"Ada", "Bob"}) {
                    insert.setString(1, first);
                    insert.setString(2, marker);
                    insert.setBoolean(3, true);
                    insert.setTimestamp(4, Timestamp.valueOf("2024-05-01 10:00:00"));
                    insert.executeUpdate();
                }
            }
            conn.commit();
            try (PreparedStatement insert = conn.prepareStatement(
                    "INSERT INTO Contacts (FirstName, LastName, IsActive, CreatedAt) VALUES (?, ?, true, ?)")) {
                insert.setString(1, "Eve");
                insert.setString(2, marker);
                insert.setTimestamp(3, Timestamp.valueOf("2024-05-02 10:00:00"));
                insert.executeUpdate();
            }
            conn.rollback();
            conn.setAutoCommit(true);
            // A batch in autocommit: one Sync after all its rows, so all or nothing.
            try (PreparedStatement insert = conn.prepareStatement(
                    "INSERT INTO Contacts (FirstName, LastName, IsActive, CreatedAt) VALUES (?, ?, true, ?)")) {
                for (String first : new String[] {"Fay", null}) {
                    insert.setString(1, first);
                    insert.setString(2, marker);
                    insert.setTimestamp(3, Timestamp.valueOf("2024-05-03 10:00:00"));
                    insert.addBatch();
                }
                insert.executeBatch();
                System.out.println("batch ok");
            } catch (SQLException e) {
                System.out.println("batch " + e.getSQLState());
            }
            try (PreparedStatement count = conn.prepareStatement(
                    "SELECT COUNT(*) AS n FROM Contacts WHERE LastName = ?")) {
                count.setString(1, marker);
                try (ResultSet rs = count.executeQuery()) {
                    rs.next();
                    System.out.println("kept " + rs.getLong(1));
                }
            }
            try (Statement statement = conn.createStatement()) {
                statement.executeQuery("SELECT Nope FROM Contacts");
            } catch (SQLException e) {
                System.out.println("refused " + e.getSQLState());
            }
        }
    }
}
